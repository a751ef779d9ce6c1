package provision

import (
	"context"
	"net/netip"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/cloudflare"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
	"github.com/rawkode/rawkode-cloud/internal/teleport"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// The phases see the outside world only through these narrow interfaces;
// the SDK adapters implement them, and tests can stand in for any of them.

// Servers orders and removes Elastic Metal servers.
type Servers interface {
	ListSSHKeyIDs(ctx context.Context) ([]string, error)
	CheckCompatibility(ctx context.Context, offerID, osID string) error
	// OfferDisks lists the disks an offer comes with.
	OfferDisks(ctx context.Context, offerID string) (name string, disks []scaleway.Disk, err error)
	CreateServer(ctx context.Context, spec scaleway.ServerSpec) (*scaleway.Server, error)
	WaitIPv4(ctx context.Context, id string, opts wait.Options) (*scaleway.Server, error)
	WaitReady(ctx context.Context, id string, opts wait.Options) (*scaleway.Server, error)
	GetServer(ctx context.Context, id string) (*scaleway.Server, error)
	DeleteServer(ctx context.Context, id string, opts wait.Options) error
	FindServers(ctx context.Context, tags ...string) ([]scaleway.Server, error)
	WatchServers(ctx context.Context, tags []string, opts wait.Options, see func([]scaleway.Server) (bool, error)) error
	// Order now, install later (talos-config-delivery: install).
	SetUserData(ctx context.Context, id string, data []byte) error
	ClearUserData(ctx context.Context, id string) error
	InstallServer(ctx context.Context, id string, spec scaleway.InstallSpec) error
}

// DNS points a name at the control planes and puts it back on undo.
type DNS interface {
	// SetA calls before right before each create or update goes out, with
	// a Change that Revert undoes whatever becomes of the request.
	SetA(ctx context.Context, name string, ipv4s []string, before func(cloudflare.Change)) ([]cloudflare.Change, error)
	Revert(ctx context.Context, ch cloudflare.Change) error
	FindA(ctx context.Context, name string) ([]cloudflare.Record, error)
	DeleteRecord(ctx context.Context, id string) error
	// CheckAccess proves the token active and allowed to edit DNS in the
	// zone; proven is false when the zone does not say either way.
	CheckAccess(ctx context.Context) (proven bool, err error)
}

// SecretStore reads settings and keeps the cluster's credentials.
type SecretStore interface {
	List(ctx context.Context) (map[string]string, error)
	Get(ctx context.Context, path, name string) (string, error)
	Write(ctx context.Context, path string, secrets map[string]string) error
	Delete(ctx context.Context, path string, names []string) error
	// CheckWrite proves the identity may create and delete secrets under
	// path by writing the secret probe and deleting it; mayExist says the
	// probe may be left (see infisical.Client.CheckWrite).
	CheckWrite(ctx context.Context, path, probe string) (mayExist bool, err error)
	Close()
}

// Teleport mints join tokens and confirms the cluster registered.
type Teleport interface {
	Check(ctx context.Context) error
	ServerVersion() string
	CreateKubeToken(ctx context.Context, clusterName string, ttl time.Duration) (teleport.Token, error)
	DeleteToken(ctx context.Context, name string) error
	// TokenExpiry is when Teleport expires the token (ErrNotFound: gone).
	TokenExpiry(ctx context.Context, name string) (time.Time, error)
	ListKubeTokens(ctx context.Context, clusterName string) ([]teleport.Token, error)
	WaitKubeServer(ctx context.Context, clusterName string, opts wait.Options) error
	// WaitKubeAgent accepts only a kube server whose cluster carries labels.
	WaitKubeAgent(ctx context.Context, clusterName string, labels map[string]string, opts wait.Options) error
	KubeAgents(ctx context.Context, clusterName string) ([]teleport.KubeAgent, error)
	CheckPermissions(ctx context.Context) error
	Close() error
}

// Talos drives the node through the Talos API.
type Talos interface {
	WaitMaintenance(ctx context.Context, ip string, opts wait.Options) error
	ApplyInsecure(ctx context.Context, ip string, cfg []byte) error
	WaitMTLS(ctx context.Context, ip string, talosconfig []byte, opts wait.Options) error
	Bootstrap(ctx context.Context, ip string, talosconfig []byte, opts wait.Options) error
	WaitServices(ctx context.Context, ip string, talosconfig []byte, services []string, opts wait.Options) error
	Kubeconfig(ctx context.Context, ip string, talosconfig []byte) ([]byte, error)
	ApplySecure(ctx context.Context, ip string, talosconfig, cfg []byte) (bool, error)
	ProbePorts(ctx context.Context, ip string, ports []int) (map[int]bool, error)
	EtcdMembers(ctx context.Context, ip string, talosconfig []byte) ([]string, error)
	WipeConfigVolume(ctx context.Context, ip string, talosconfig []byte, device string) error
}

// IPDetector finds the operator's public IPv4.
type IPDetector interface {
	Detect(ctx context.Context) (netip.Addr, error)
}
