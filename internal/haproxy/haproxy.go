// Package haproxy renders the Proxmox topology's public entry point: an
// HAProxy that routes TLS by SNI on 443 without terminating it, and passes 80
// to the cluster's gateway.
//
// Routes (the second design document's table):
//
//	teleport.<domain>, proxmox.<domain>  → the Teleport VM's web port (3080);
//	                                       Teleport's app access serves the
//	                                       Proxmox UI under proxmox.<domain>
//	*.apps.<domain>                      → the Cilium gateway VIP :443
//	anything else, or no TLS at all      → rejected before a backend is chosen
//	:80                                  → the gateway VIP :80 (its redirect)
//
// The config is proven with the real HAProxy in the tests: `haproxy -c`, and
// a loopback run where it routes real TLS handshakes by SNI.
package haproxy

import (
	"bytes"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"text/template"
)

// Config is what the rendered haproxy.cfg needs.
type Config struct {
	// Domain is the topology's public domain (the `domain` setting).
	Domain string
	// Teleport is the Teleport proxy's web listener, e.g. 10.10.0.2:3080.
	Teleport netip.AddrPort
	// GatewayHTTPS and GatewayHTTP are the Cilium gateway VIP's listeners.
	GatewayHTTPS, GatewayHTTP netip.AddrPort

	// Listen addresses; ":443" and ":80" when empty. The tests bind
	// inherited sockets (fd@N) instead.
	ListenHTTPS, ListenHTTP string
	// Unprivileged leaves out chroot and the user switch, so the tests can
	// run the same routes as an ordinary process.
	Unprivileged bool
	// Log is the log target; /dev/log (journald) when empty.
	Log string
}

var reDomain = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)

func (c Config) validate() error {
	if !reDomain.MatchString(c.Domain) {
		return fmt.Errorf("haproxy: domain %q is not a lowercase DNS name (set `domain`)", c.Domain)
	}
	for name, ap := range map[string]netip.AddrPort{"Teleport": c.Teleport, "gateway HTTPS": c.GatewayHTTPS, "gateway HTTP": c.GatewayHTTP} {
		if !ap.IsValid() || ap.Port() == 0 {
			return fmt.Errorf("haproxy: the %s backend has no address", name)
		}
	}
	return nil
}

// TeleportHost and ProxmoxHost are the public names routed to Teleport.
func (c Config) TeleportHost() string { return "teleport." + c.Domain }

// ProxmoxHost is the name under which Teleport's app access serves the
// Proxmox UI.
func (c Config) ProxmoxHost() string { return "proxmox." + c.Domain }

// AppsSuffix is what every application name ends with (*.apps.<domain>).
func (c Config) AppsSuffix() string { return ".apps." + c.Domain }

// Render returns haproxy.cfg.
func Render(c Config) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	if c.ListenHTTPS == "" {
		c.ListenHTTPS = ":443"
	}
	if c.ListenHTTP == "" {
		c.ListenHTTP = ":80"
	}
	if c.Log == "" {
		c.Log = "/dev/log"
	}
	var buf bytes.Buffer
	if err := cfgTemplate.Execute(&buf, c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var cfgTemplate = template.Must(template.New("haproxy.cfg").Funcs(template.FuncMap{"lower": strings.ToLower}).Parse(`# Rendered by rawkode-cloud: SNI routing without TLS termination.
global
    log {{.Log}} local0
{{- if not .Unprivileged}}
    chroot /var/lib/haproxy
    user haproxy
    group haproxy
{{- end}}
    maxconn 4096

defaults
    mode tcp
    log global
    option tcplog
    option dontlognull
    timeout connect 5s
    # Teleport carries long-lived SSH and kubectl sessions over this port.
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h

frontend tls_sni
    bind {{.ListenHTTPS}}
    # Wait up to 5s for the ClientHello, then decide on its SNI alone.
    tcp-request inspect-delay 5s
    acl teleport req.ssl_sni -i {{.TeleportHost}} {{.ProxmoxHost}}
    acl apps req.ssl_sni -m end -i {{.AppsSuffix}}
    tcp-request content accept if teleport
    tcp-request content accept if apps
    # Everything else (unknown names, no SNI, not TLS) is dropped here,
    # before any backend sees it.
    tcp-request content reject
    use_backend teleport_web if teleport
    use_backend gateway_https if apps

frontend http
    bind {{.ListenHTTP}}
    default_backend gateway_http

backend teleport_web
    server teleport {{.Teleport}} check

backend gateway_https
    server gateway {{.GatewayHTTPS}} check

backend gateway_http
    server gateway {{.GatewayHTTP}} check
`))
