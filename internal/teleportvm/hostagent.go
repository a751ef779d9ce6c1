package teleportvm

import (
	"bytes"
	"fmt"
	"net/netip"
	"regexp"

	"go.yaml.in/yaml/v4"
)

// The design document's phase 7 reaches the Proxmox host as an SSH node
// through this Teleport. The host runs a Teleport agent with only the SSH
// service. Its teleport.yaml arrives with the host's user data, long before
// the Teleport VM exists: it names a join token the CLI chose then and
// creates on the Teleport VM (role Node, short TTL) once the VM's auth
// service answers; until then the agent's joins are refused and systemd
// restarts it. The token is deleted once the node is registered, so the
// name left in the host's file opens nothing.
//
// The agent joins the auth service on the internal network directly
// (10.10.0.2:3025): the proxy's certificate is for teleport.<domain>, which
// the host would reach only by hairpinning through its own public address.
// There is no CA pin to give it (the VM makes its CA at first boot), so
// the first join trusts the auth server it reaches on vmbr1, a network only
// the host and its VMs are on.

// HostAgent is the host's Teleport SSH service.
type HostAgent struct {
	// NodeName is the host's name in Teleport (its Proxmox node name).
	NodeName string
	// AuthServer is the Teleport VM's auth service, e.g. 10.10.0.2:3025.
	AuthServer netip.AddrPort
	// Token is the join token's name (a secret until it is deleted).
	Token string
	// Labels are the node's static labels.
	Labels map[string]string
}

// HostAgentPath is where the host's agent config lives.
const HostAgentPath = "/etc/teleport.yaml"

// HostRoleLabel marks the host among the nodes.
var HostRoleLabel = map[string]string{"rawkode-cloud/role": "proxmox-host"}

type hostAgentFile struct {
	Version  string `yaml:"version"`
	Teleport struct {
		NodeName   string `yaml:"nodename"`
		DataDir    string `yaml:"data_dir"`
		AuthServer string `yaml:"auth_server"`
		JoinParams struct {
			Method    string `yaml:"method"`
			TokenName string `yaml:"token_name"`
		} `yaml:"join_params"`
		Log struct {
			Output   string `yaml:"output"`
			Severity string `yaml:"severity"`
		} `yaml:"log"`
	} `yaml:"teleport"`
	Auth  enabled `yaml:"auth_service"`
	Proxy enabled `yaml:"proxy_service"`
	SSH   struct {
		Enabled bool              `yaml:"enabled"`
		Labels  map[string]string `yaml:"labels,omitempty"`
	} `yaml:"ssh_service"`
}

type enabled struct {
	Enabled bool `yaml:"enabled"`
}

var reToken = regexp.MustCompile(`^[0-9a-f]{32,}$`)

// HostAgentYAML renders the host agent's teleport.yaml (v3). It holds the
// join token's name.
func HostAgentYAML(a HostAgent) ([]byte, error) {
	if !reLabel.MatchString(a.NodeName) {
		return nil, fmt.Errorf("host agent: node name %q is not a DNS label", a.NodeName)
	}
	if !a.AuthServer.IsValid() {
		return nil, fmt.Errorf("host agent: no auth server address")
	}
	if !reToken.MatchString(a.Token) {
		return nil, fmt.Errorf("host agent: the join token is not a generated one")
	}
	var f hostAgentFile
	f.Version = "v3"
	f.Teleport.NodeName = a.NodeName
	f.Teleport.DataDir = "/var/lib/teleport"
	f.Teleport.AuthServer = a.AuthServer.String()
	f.Teleport.JoinParams.Method, f.Teleport.JoinParams.TokenName = "token", a.Token
	f.Teleport.Log.Output, f.Teleport.Log.Severity = "stderr", "INFO"
	f.SSH.Enabled, f.SSH.Labels = true, a.Labels
	var buf bytes.Buffer
	buf.WriteString("# Rendered by rawkode-cloud: the Proxmox host's SSH service, joining the Teleport VM.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var reLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ParseHostAgent reads what HostAgentYAML wrote, as the agent would: it
// refuses a config whose SSH service is off or that names no token.
func ParseHostAgent(data []byte) (HostAgent, error) {
	var f hostAgentFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		return HostAgent{}, err
	}
	if f.Version != "v3" || !f.SSH.Enabled || f.Teleport.JoinParams.Method != "token" || f.Teleport.JoinParams.TokenName == "" {
		return HostAgent{}, fmt.Errorf("not a token-joining SSH service config")
	}
	ap, err := netip.ParseAddrPort(f.Teleport.AuthServer)
	if err != nil {
		return HostAgent{}, fmt.Errorf("auth_server: %w", err)
	}
	return HostAgent{NodeName: f.Teleport.NodeName, AuthServer: ap, Token: f.Teleport.JoinParams.TokenName, Labels: f.SSH.Labels}, nil
}

// App is one app a teleport.yaml's app service serves.
type App struct{ Name, URI, PublicAddr string }

// ServedApps reads the apps a Teleport VM's teleport.yaml serves, and
// whether its proxy has the reverse tunnel listener they register through.
func ServedApps(teleportYAML []byte) (apps []App, tunnel bool, err error) {
	var f fileConfig
	if err := yaml.Unmarshal(teleportYAML, &f); err != nil {
		return nil, false, err
	}
	if f.App.Enabled {
		for _, a := range f.App.Apps {
			apps = append(apps, App{Name: a.Name, URI: a.URI, PublicAddr: a.PublicAddr})
		}
	}
	return apps, f.Proxy.Enabled && f.Proxy.TunnelListenAddr != "", nil
}

// AuthAddr is the Teleport VM's auth service at addr.
func AuthAddr(addr netip.Addr) netip.AddrPort { return netip.AddrPortFrom(addr, AuthPort) }

// ProxmoxApp is the name of the Proxmox UI app.
const ProxmoxApp = "proxmox"
