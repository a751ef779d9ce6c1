// Package ops holds the day-two operations on a cluster that exists:
// listing clusters, their status, etcd backups, rebuilds and resumed runs. Nothing is kept locally: what a cluster is comes
// from the cloud's tags and the secret store, as destroy finds it.
package ops

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/infisical"
	"github.com/rawkode/rawkode-cloud/internal/inside"
	"github.com/rawkode/rawkode-cloud/internal/kube"
	"github.com/rawkode/rawkode-cloud/internal/provision"
	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/s3"
	"github.com/rawkode/rawkode-cloud/internal/talos"
	"github.com/rawkode/rawkode-cloud/internal/teleport"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// Talos is what the day-two operations ask of the Talos API.
type Talos interface {
	ProbePorts(ctx context.Context, ip string, ports []int) (map[int]bool, error)
	Inspect(ctx context.Context, ip string, talosconfig []byte) (talos.NodeInfo, error)
	EtcdSnapshot(ctx context.Context, ip string, talosconfig []byte) ([]byte, error)
	EtcdRecover(ctx context.Context, ip string, talosconfig, snapshot []byte) error
	BootstrapRecover(ctx context.Context, ip string, talosconfig []byte, opts wait.Options) error
	ReadConfig(ctx context.Context, ip string, talosconfig []byte) ([]byte, error)
	ApplySecure(ctx context.Context, ip string, talosconfig, cfg []byte) (bool, error)
	Upgrade(ctx context.Context, ip string, talosconfig []byte, image string) error
	WaitUpgraded(ctx context.Context, ip string, talosconfig []byte, version string, want []string, opts wait.Options) error
}

// Backups is the object storage etcd snapshots go to.
type Backups interface {
	Put(ctx context.Context, key string, data []byte) error
	Get(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix string) ([]s3.Object, error)
	Bucket() string
}

// Teleport is what the day-two operations ask of Teleport.
type Teleport interface {
	KubeClusters(ctx context.Context) ([]string, error)
	Close() error
}

// Env is the set of clients one day-two command works with. Clients of
// services that are not configured are nil.
type Env struct {
	Cfg      *config.Config
	Servers  provision.Servers
	DNS      provision.DNS
	Store    provision.SecretStore
	Teleport Teleport
	Talos    Talos
	// Backups is nil when no snapshot bucket is configured.
	Backups Backups
	// IP finds this machine's public address (break-glass openings admit it).
	IP provision.IPDetector
	// Kube reads the cluster's Kubernetes API at a node's address, with
	// the stored admin kubeconfig.
	Kube func(kubeconfig []byte, nodeIP string) (KubeNodes, error)
	// Inside opens the route into a locked-down cluster (Teleport
	// Kubernetes access → hostNetwork pod → apid on loopback); nil
	// without Teleport.
	Inside func(ctx context.Context, cluster string) (Route, error)
	// TalosVia is a Talos client that dials through dial.
	TalosVia func(dial func(ctx context.Context, addr string) (net.Conn, error)) Talos

	route Route // the inside route in use, if any
}

// KubeNodes is what the day-two operations ask of the Kubernetes API.
type KubeNodes interface {
	NodesReady(ctx context.Context, want int) (kube.Report, error)
}

// Open fills the settings from Infisical and builds the clients.
func Open(ctx context.Context, f provision.Factory, cfg *config.Config, addSecret func(...string)) (*Env, error) {
	store, _, err := provision.FillFromInfisical(ctx, f, cfg, addSecret)
	if err != nil {
		return nil, err
	}
	e := &Env{Cfg: cfg, Store: store}
	req := config.Requirements{Required: []string{config.ScalewayAccessKey, config.ScalewaySecretKey, config.ScalewayProjectID}}
	if err := cfg.Validate(req); err != nil {
		e.Close()
		return nil, fail.UsageError(err)
	}
	if e.Servers, err = f.Scaleway(cfg); err != nil {
		e.Close()
		return nil, fail.UsageError(err)
	}
	if e.DNS, err = f.Cloudflare(cfg); err != nil {
		e.Close()
		return nil, fail.UsageError(err)
	}
	if cfg.IsSet(config.TeleportProxy) {
		tp, err := f.Teleport(ctx, cfg)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("connect to Teleport: %w", err)
		}
		t, ok := tp.(Teleport)
		if !ok {
			_ = tp.Close()
			e.Close()
			return nil, errors.New("the Teleport client cannot list kube servers")
		}
		e.Teleport = t
	}
	if cfg.IsSet(config.EtcdBackupBucket) {
		b, err := s3.New(s3.Config{Endpoint: cfg.Get(config.EtcdBackupEndpoint), Region: cfg.Get(config.EtcdBackupRegion),
			Bucket: cfg.Get(config.EtcdBackupBucket), AccessKey: cfg.Get(config.ScalewayAccessKey),
			SecretKey: cfg.Get(config.ScalewaySecretKey), HTTPClient: f.HTTPClient, Retry: retry.Policy{Budget: f.CallBudget}})
		if err != nil {
			e.Close()
			return nil, fail.UsageError(err)
		}
		e.Backups = b
	}
	t, ok := f.Talos(cfg).(Talos)
	if !ok {
		e.Close()
		return nil, errors.New("the Talos client cannot inspect nodes")
	}
	e.Talos = t
	e.TalosVia = func(dial func(ctx context.Context, addr string) (net.Conn, error)) Talos {
		via := f
		via.TalosDialer = dial
		t, _ := via.Talos(cfg).(Talos)
		return t
	}
	if kc, ok := e.Teleport.(kubeCredentials); ok {
		e.Inside = insideRoute(kc, f.TimeScale)
	}
	e.IP = f.IPDetector(cfg)
	e.Kube = func(kubeconfig []byte, nodeIP string) (KubeNodes, error) { return f.Kube(kubeconfig, nodeIP) }
	return e, nil
}

// Close releases connections.
func (e *Env) Close() {
	if e.Store != nil {
		e.Store.Close()
	}
	if e.Teleport != nil {
		_ = e.Teleport.Close()
	}
}

// secret reads one of a cluster's stored credentials; "" when absent.
func (e *Env) secret(ctx context.Context, cluster, name string) (string, error) {
	if e.Store == nil {
		return "", nil
	}
	v, err := e.Store.Get(ctx, provision.SecretsPath(cluster), name)
	if errors.Is(err, infisical.ErrNotFound) {
		return "", nil
	}
	return v, err
}

// kubeCredentials is the Teleport client's Kubernetes access.
type kubeCredentials interface {
	KubeCredentials(ctx context.Context, kubeCluster string, ttl time.Duration) (teleport.KubeCredentials, error)
}

// insideCertTTL is how long one Kubernetes certificate of the inside
// route lives; the route renews it when less than five minutes are left.
const insideCertTTL = 30 * time.Minute

// insideRoute opens the inside route with certificates for the cluster's
// kube cluster (the agent registers it under the cluster's name). speed
// is the sandbox's time scale (0 on the real network).
func insideRoute(kc kubeCredentials, speed float64) func(ctx context.Context, cluster string) (Route, error) {
	scaled := func(d time.Duration) time.Duration {
		if speed > 0 {
			return max(time.Duration(float64(d)/speed), 5*time.Millisecond)
		}
		return d
	}
	return func(ctx context.Context, cluster string) (Route, error) {
		r, err := inside.New(ctx, inside.Options{
			Credentials: func(ctx context.Context) (teleport.KubeCredentials, error) {
				return kc.KubeCredentials(ctx, cluster, insideCertTTL)
			},
			Wait:            wait.Options{Interval: scaled(time.Second)},
			PodStartTimeout: max(scaled(2*time.Minute), 10*time.Second),
		})
		if err != nil {
			return nil, err // not a nil *inside.Route in a non-nil Route
		}
		return r, nil
	}
}
