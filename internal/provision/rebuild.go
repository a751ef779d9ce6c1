package provision

import (
	"context"
	"fmt"

	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// RebuildFrom turns a provisioning into a rebuild of a cluster whose
// servers are gone: the new servers get the stored secrets bundle, so the
// cluster keeps its identity, its certificates and its Teleport name, and
// etcd starts from a snapshot when there is one.
type RebuildFrom struct {
	// Bundle is the stored Talos secrets bundle (TALOS_SECRETS_BUNDLE).
	Bundle []byte
	// Snapshot is an etcd snapshot to restore; nil bootstraps a fresh etcd
	// (Flux then restores the workloads from Git).
	Snapshot []byte
	// SnapshotName says where the snapshot came from, for the output.
	SnapshotName string
}

// etcdRecoverer is the part of the Talos client a restore needs.
type etcdRecoverer interface {
	EtcdRecover(ctx context.Context, ip string, talosconfig, snapshot []byte) error
	BootstrapRecover(ctx context.Context, ip string, talosconfig []byte, opts wait.Options) error
}

// storedSecrets decodes the bundle a rebuild reuses instead of a new PKI.
func (p *Provisioner) storedSecrets() (*secrets.Bundle, error) {
	b, err := machineconfig.UnmarshalSecrets(p.reusedBundle())
	if err != nil {
		return nil, fmt.Errorf("read the stored secrets bundle: %w", err)
	}
	return b, nil
}

// recoverEtcd bootstraps etcd on n from the rebuild's snapshot: upload it
// (Talos's EtcdRecover, accepted while etcd waits for its bootstrap), then
// Bootstrap with recover_etcd.
func (p *Provisioner) recoverEtcd(ctx context.Context, r *pipeline.Run, n *Node) error {
	rec, ok := p.talos.(etcdRecoverer)
	if !ok {
		return fmt.Errorf("the Talos client cannot restore etcd snapshots")
	}
	w := r.Wait("etcd recovery from "+p.opts.Rebuild.SnapshotName, p.timeout(config.TalosMTLSTimeout), p.cfg.Duration(config.TalosMTLSInterval))
	wctx, cancel := w.Context(ctx)
	defer cancel()
	// etcd accepts a snapshot only once it waits for the bootstrap.
	err := wait.Until(wctx, "etcd waiting for its bootstrap on "+n.IP(), w.Options(), func(ctx context.Context) (bool, string, error) {
		err := rec.EtcdRecover(ctx, n.IP(), p.talosconfig, p.opts.Rebuild.Snapshot)
		switch status.Code(err) {
		case codes.OK:
		case codes.FailedPrecondition, codes.Unavailable:
			return false, "etcd not waiting for its bootstrap yet", nil
		default:
			return false, "", err // a damaged snapshot does not get better
		}
		return true, "snapshot uploaded", nil
	})
	if err != nil {
		return err
	}
	if err := rec.BootstrapRecover(wctx, n.IP(), p.talosconfig, w.Options()); err != nil {
		return err
	}
	w.Done()
	r.Info("etcd restored from snapshot", map[string]any{"snapshot": p.opts.Rebuild.SnapshotName, "ip": n.IP()})
	return nil
}
