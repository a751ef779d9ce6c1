package provision

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/cloudflare"
	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/imagefactory"
	"github.com/rawkode/rawkode-cloud/internal/infisical"
	"github.com/rawkode/rawkode-cloud/internal/ipdetect"
	"github.com/rawkode/rawkode-cloud/internal/kube"
	"github.com/rawkode/rawkode-cloud/internal/metering"
	"github.com/rawkode/rawkode-cloud/internal/proxmox"
	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
	"github.com/rawkode/rawkode-cloud/internal/talos"
	"github.com/rawkode/rawkode-cloud/internal/teleport"
)

// Factory builds the SDK adapters from settings. Production leaves every
// endpoint empty (each SDK's default, or SCW_API_URL for Scaleway); the
// sandbox points them at its emulators. Nothing else differs.
type Factory struct {
	ScalewayAPIURL    string
	CloudflareBaseURL string
	IPDetectURLs      []string
	// IPAllowNonPublic accepts an emulator's loopback answer.
	IPAllowNonPublic bool
	TalosDialer      talos.Dialer
	HTTPClient       *http.Client
	// OnRetry is told about every retried call, by service.
	OnRetry func(service string, a retry.Attempt)
	// Meter, when set, counts every request sent, per service and operation.
	Meter *metering.Meter
	// SecretStore, when set, replaces the Infisical login (tests).
	SecretStore func(ctx context.Context, cfg *config.Config) (SecretStore, error)
	// AttemptTimeout bounds one attempt of any call (one HTTP request, one
	// RPC, one probe), so a hung service costs a retry instead of the run;
	// zero keeps each adapter's own default (10s to 60s). The sandbox
	// scales it with its clock.
	AttemptTimeout time.Duration
	// ProxmoxEndpoint, when set, says where the Proxmox API of the host at
	// an IP is and which client reaches it (the sandbox's emulators). Unset,
	// the API is https://IP:8006, trusted only with the certificate the CLI
	// made for the host.
	ProxmoxEndpoint func(ip string) (url string, client *http.Client, ok bool)
	// TeleportAddr, when set, says where a Teleport proxy address is
	// reached (the sandbox: the proxmox topology's own Teleport VM is its
	// Teleport emulator). Unset, the address is dialled as it is.
	TeleportAddr func(addr string) string
	// CallBudget bounds a call and its retries when nothing else does (the
	// call is not part of a wait, nor of cleanup, which have deadlines of
	// their own); zero means DefaultCallBudget.
	CallBudget time.Duration
	// TimeScale divides spans of the run's clock that are not waits (the
	// join token's TTL): the sandbox runs that much faster than real time,
	// so its tokens expire when the run, in its time, outlasts them. Zero
	// means real time.
	TimeScale float64
	// TimeSlack is real time added to such a scaled span: handshakes and
	// key generation do not speed up with the sandbox's clock, and a token
	// that expires because the machine is busy is not what a run rehearses.
	TimeSlack time.Duration
}

// DefaultCallBudget is how long one call outside any wait may keep retrying
// a failing or hung service before the run gives up on it (and undoes).
const DefaultCallBudget = 3 * time.Minute

func (f Factory) policy(service string) retry.Policy {
	p := retry.Policy{Budget: f.CallBudget}
	if p.Budget <= 0 {
		p.Budget = DefaultCallBudget
	}
	if f.OnRetry != nil {
		p.OnRetry = func(a retry.Attempt) { f.OnRetry(service, a) }
	}
	return p
}

// Infisical logs in with Universal Auth.
func (f Factory) Infisical(ctx context.Context, cfg *config.Config) (SecretStore, error) {
	if f.SecretStore != nil {
		return f.SecretStore(ctx, cfg)
	}
	return infisical.Connect(ctx, infisical.Config{
		SiteURL:      cfg.Get(config.InfisicalURL),
		ClientID:     cfg.Get(config.InfisicalClientID),
		ClientSecret: cfg.Get(config.InfisicalClientSecret),
		ProjectID:    cfg.Get(config.InfisicalProjectID),
		Environment:  cfg.Get(config.InfisicalEnvironment),
		SecretPath:   cfg.Get(config.InfisicalSecretPath),
		Retry:        f.policy("infisical"),
		// Zero keeps the adapter's default.
		AttemptTimeout: f.AttemptTimeout,
		OnRequest:      func(op string) { f.Meter.Inc("infisical", op) },
	})
}

// Scaleway builds the Elastic Metal client (no network call).
func (f Factory) Scaleway(cfg *config.Config) (Servers, error) {
	return scaleway.New(scaleway.Config{
		AccessKey:  cfg.Get(config.ScalewayAccessKey),
		SecretKey:  cfg.Get(config.ScalewaySecretKey),
		ProjectID:  cfg.Get(config.ScalewayProjectID),
		Zone:       cfg.Get(config.ScalewayZone),
		APIURL:     f.ScalewayAPIURL,
		HTTPClient: f.httpClient(),
		Retry:      f.policy("scaleway"),
	})
}

// Cloudflare builds the DNS client; nil when Cloudflare is not configured.
func (f Factory) Cloudflare(cfg *config.Config) (DNS, error) {
	if !cfg.IsSet(config.CloudflareAPIToken) {
		return nil, nil
	}
	return cloudflare.New(cloudflare.Config{
		APIToken:   cfg.Get(config.CloudflareAPIToken),
		ZoneID:     cfg.Get(config.CloudflareZoneID),
		BaseURL:    f.CloudflareBaseURL,
		HTTPClient: f.meteredClient("cloudflare", f.HTTPClient),
		// Zero keeps the adapter's default.
		RequestTimeout: f.AttemptTimeout,
		Comment:        "managed by rawkode-cloud (cluster " + cfg.Get(config.ClusterName) + ")",
		Retry:          f.policy("cloudflare"),
	})
}

// Teleport connects with the identity the settings name: its content (from
// the secret store), a file, or else the tsh profile.
func (f Factory) Teleport(ctx context.Context, cfg *config.Config) (Teleport, error) {
	tc := teleport.Config{
		Proxy: cfg.Get(config.TeleportProxy),
		Retry: f.policy("teleport"),
		// Zero keeps the client's defaults.
		DialTimeout:    f.AttemptTimeout,
		DialOpts:       f.Meter.DialOptions("teleport"),
		AttemptTimeout: f.AttemptTimeout,
	}
	switch {
	case cfg.IsSet(config.TeleportIdentity):
		tc.IdentityContent = []byte(cfg.Get(config.TeleportIdentity))
	case cfg.IsSet(config.TeleportIdentityFile):
		// Read here rather than by path so a file that vanished since
		// validation gives one clear error.
		b, err := os.ReadFile(cfg.Get(config.TeleportIdentityFile))
		if err != nil {
			return nil, err
		}
		tc.IdentityContent = b
	}
	return teleport.Connect(ctx, tc)
}

// Talos builds the Talos client.
func (f Factory) Talos(*config.Config) Talos {
	p := f.policy("talos")
	return talos.New(talos.Options{Dialer: f.TalosDialer, OnRetry: p.OnRetry, RetryBudget: p.Budget, AttemptTimeout: f.AttemptTimeout,
		DialOpts: f.Meter.DialOptions("talos")})
}

// ImageFactory builds the Talos Image Factory client.
func (f Factory) ImageFactory(cfg *config.Config) (ImageFactory, error) {
	return imagefactory.New(imagefactory.Options{URL: cfg.Get(config.ImageFactoryURL), HTTPClient: f.meteredClient("imagefactory", f.HTTPClient), Retry: f.policy("imagefactory")})
}

// imageFactoryClient is the Image Factory client itself (the proxmox
// topology checks images and builds URLs with it).
func (f Factory) imageFactoryClient(cfg *config.Config) (*imagefactory.Client, error) {
	return imagefactory.New(imagefactory.Options{URL: cfg.Get(config.ImageFactoryURL), HTTPClient: f.meteredClient("imagefactory", f.HTTPClient), Retry: f.policy("imagefactory")})
}

// Proxmox builds a client of the host at ip and logs in with creds (its
// URL, node and transport are filled here).
func (f Factory) Proxmox(ctx context.Context, ip, node string, cert []byte, creds proxmox.Config) (ProxmoxAPI, error) {
	creds.Node = node
	creds.URL = "https://" + net.JoinHostPort(ip, "8006") + "/api2/json"
	var client *http.Client
	if f.ProxmoxEndpoint != nil {
		u, c, ok := f.ProxmoxEndpoint(ip)
		if !ok {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
		}
		creds.URL, client = u, c
	} else {
		var err error
		if client, err = proxmox.PinnedClient(cert); err != nil {
			return nil, err
		}
	}
	creds.HTTPClient = f.meteredClient("proxmox", client)
	creds.RequestTimeout = f.AttemptTimeout
	creds.Retry = f.policy("proxmox")
	if f.AttemptTimeout > 0 {
		creds.TaskPoll = f.AttemptTimeout / 10
		creds.TaskTimeout = 20 * f.AttemptTimeout
	}
	return proxmox.New(ctx, creds)
}

// IPDetector builds the public-IP detector.
func (f Factory) IPDetector(*config.Config) IPDetector {
	client := f.HTTPClient
	if client == nil && f.Meter != nil {
		client = ipdetect.IPv4Client() // keep IPv4-only dialing under the meter
	}
	d := ipdetect.Detector{URLs: f.IPDetectURLs, HTTPClient: f.meteredClient("ipdetect", client), AllowNonPublic: f.IPAllowNonPublic, PerTry: f.AttemptTimeout}
	return retryingDetector{d: d, policy: f.policy("ipdetect")}
}

// retryingDetector retries a detection that failed transiently (every
// service timed out or answered 5xx/429): the detector itself asks each
// service only once, and its caller makes a single call.
type retryingDetector struct {
	d      ipdetect.Detector
	policy retry.Policy
}

func (r retryingDetector) Detect(ctx context.Context) (netip.Addr, error) {
	var a netip.Addr
	err := r.policy.Do(ctx, func(ctx context.Context) error {
		var err error
		a, err = r.d.Detect(ctx)
		return err
	})
	return a, err
}

// httpClient is the Scaleway client's: its adapter bounds a request only
// through the client's Timeout.
func (f Factory) httpClient() *http.Client {
	if f.AttemptTimeout <= 0 && f.Meter == nil {
		return f.HTTPClient // nil: the adapter's default (60s per request)
	}
	c := http.Client{Timeout: 60 * time.Second}
	if f.HTTPClient != nil {
		c = *f.HTTPClient
	}
	if f.AttemptTimeout > 0 {
		c.Timeout = f.AttemptTimeout
	}
	c.Transport = f.Meter.Transport("scaleway", c.Transport)
	return &c
}

// meteredClient wraps base (nil: a default client) so that its requests
// are counted for service; without a meter it returns base unchanged.
func (f Factory) meteredClient(service string, base *http.Client) *http.Client {
	if f.Meter == nil {
		return base
	}
	c := http.Client{}
	if base != nil {
		c = *base
	}
	c.Transport = f.Meter.Transport(service, c.Transport)
	return &c
}

// Kube reads a cluster through its Kubernetes API at the node's address
// (the kubeconfig may name a DNS record; the certificate also holds the IP).
func (f Factory) Kube(kubeconfig []byte, nodeIP string) (*kube.Client, error) {
	opts := []kube.Option{kube.WithServerHost(nodeIP), kube.WithTransportWrapper(func(rt http.RoundTripper) http.RoundTripper {
		return f.Meter.Transport("kubernetes", rt)
	})}
	if f.TalosDialer != nil {
		dial := f.TalosDialer
		opts = append(opts, kube.WithDialer(func(ctx context.Context, _, addr string) (net.Conn, error) { return dial(ctx, addr) }))
	}
	if f.TimeScale > 1 {
		// Polls come TimeScale times as often; a bucket refilling in real
		// time would hold them back by whole poll intervals.
		opts = append(opts, kube.WithRateLimit(float32(kube.DefaultQPS*f.TimeScale), int(kube.DefaultBurst*f.TimeScale)))
	}
	return kube.New(kubeconfig, opts...)
}
