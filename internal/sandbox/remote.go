package sandbox

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/provision"
)

// Remote is a sandbox served by another process, seen from a client.
type Remote struct {
	url   string
	world World
	http  *http.Client
}

// Connect asks the served sandbox at url what it is.
func Connect(ctx context.Context, url string) (*Remote, error) {
	r := &Remote{url: url, http: &http.Client{Timeout: 10 * time.Second}}
	if err := r.get(ctx, "/v1/world", &r.world); err != nil {
		return nil, err
	}
	if r.world.Speed <= 0 {
		return nil, fmt.Errorf("served sandbox at %s: no speed in its description", url)
	}
	return r, nil
}

func (r *Remote) get(ctx context.Context, path string, into any) error {
	return r.do(ctx, http.MethodGet, path, nil, into)
}

func (r *Remote) do(ctx context.Context, method, path string, body, into any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.url+path, rd)
	if err != nil {
		return fmt.Errorf("served sandbox at %s: %w", r.url, err)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach the served sandbox at %s (is 'rawkode-cloud sandbox serve' still running?): %w", r.url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("served sandbox at %s: %s %s: %s: %s", r.url, method, path, resp.Status, bytes.TrimSpace(b))
	}
	if err := json.Unmarshal(b, into); err != nil {
		return fmt.Errorf("served sandbox at %s: %s: %w", r.url, path, err)
	}
	return nil
}

// Speed is the served sandbox's time-scale factor.
func (r *Remote) Speed() float64 { return r.world.Speed }

// Describe says what the commands run against, for the first line of output.
func (r *Remote) Describe() string {
	return fmt.Sprintf("served sandbox at %s: every service is an emulator; time runs %g× faster than real, and the CLI's waits and intervals are scaled by the same factor", r.url, r.world.Speed)
}

// Apply scales the waits by the served sandbox's speed and names the DNS
// record after the cluster, as an in-process sandbox does. Endpoints and
// credentials come from the config file `sandbox serve` wrote.
func (r *Remote) Apply(cfg *config.Config) {
	set := func(name, v string) { cfg.Set(name, v, config.FromSandbox, r.url) }
	scaleWaits(cfg, r.world.Speed, set)
	if !cfg.IsSet(config.CloudflareDNSName) && cfg.IsSet(config.CloudflareAPIToken) {
		cluster := cfg.Get(config.ClusterName)
		if cluster == "" {
			cluster = DefaultClusterName // commands about every cluster (list) use no record
		}
		set(config.CloudflareDNSName, cluster+"."+DefaultDNSZone)
	}
}

// Factory points the adapters that have no endpoint setting at the served
// emulators, and the Talos client at the relay.
func (r *Remote) Factory() provision.Factory {
	return factoryFor(r.world.Speed, provision.Factory{
		ScalewayAPIURL:    r.world.ScalewayURL,
		CloudflareBaseURL: r.world.CloudflareURL,
		IPDetectURLs:      []string{r.world.IPDetectURL},
		IPAllowNonPublic:  true,
		TalosDialer:       relayDialer(r.url),
		ProxmoxEndpoint:   r.proxmoxEndpoint,
		TeleportAddr:      r.resolveTeleport,
	})
}

// proxmoxEndpoint asks the serving process where the emulated Proxmox host
// at ip answers, and trusts the certificate it names, as an in-process
// sandbox's client does.
func (r *Remote) proxmoxEndpoint(ip string) (string, *http.Client, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var h ProxmoxHost
	if err := r.get(ctx, "/v1/proxmox-host?ip="+url.QueryEscape(ip), &h); err != nil {
		return "", nil, false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(h.Certificate)) {
		return "", nil, false
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return h.URL, &http.Client{Transport: tr}, true
}

// resolveTeleport is the served sandbox's DNS for the proxmox topology's
// Teleport VM (teleport.<domain>:443 → its Teleport emulator).
func (r *Remote) resolveTeleport(addr string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out struct {
		Addr string `json:"addr"`
	}
	if err := r.get(ctx, "/v1/resolve?addr="+url.QueryEscape(addr), &out); err != nil || out.Addr == "" {
		return unresolved
	}
	return out.Addr
}

// Inventory is what the served emulators hold.
func (r *Remote) Inventory(ctx context.Context) (Inventory, error) {
	var inv Inventory
	err := r.get(ctx, "/v1/inventory", &inv)
	return inv, err
}

// SetFaults replaces the faults injected into the served emulators; an
// empty list clears them. It returns the faults now in force.
func (r *Remote) SetFaults(ctx context.Context, specs []string) ([]string, error) {
	if _, err := ParseFaults(specs); err != nil {
		return nil, err
	}
	if specs == nil {
		specs = []string{}
	}
	var now []string
	err := r.do(ctx, http.MethodPut, "/v1/faults", specs, &now)
	return now, err
}

// factoryFor sets the timeouts every sandbox factory shares.
func factoryFor(speed float64, f provision.Factory) provision.Factory {
	scaled := func(d time.Duration) time.Duration { return time.Duration(float64(d) / speed) }
	// A hung emulator must cost what a hung service costs in real life,
	// scaled: the adapters' own per-attempt timeouts (10s–60s) and the
	// 3-minute budget of a call outside any wait are not settings, so
	// Apply cannot scale them. The floors keep a loaded machine's TLS
	// handshakes from timing out, and leave room for a 429's Retry-After
	// (whole seconds) to be honoured twice. One attempt of a Talos call
	// through the proxmox host's forward is a dial, an mTLS handshake and
	// the call, each through an emulator goroutine: on two busy cores that
	// took more than one second, so the floor is two.
	f.AttemptTimeout = max(scaled(30*time.Second), 2*time.Second)
	f.CallBudget = max(scaled(provision.DefaultCallBudget), 5*time.Second)
	f.TimeScale = speed
	f.TimeSlack = timeoutSlack
	return f
}
