package ops

import (
	"context"
	"fmt"
	"path"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/provision"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// Snapshot is one etcd snapshot in object storage.
type Snapshot struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	Node   string `json:"node,omitempty"`
	// Route is how the node's Talos API was reached: ViaDirect or ViaInside.
	Route string `json:"route,omitempty"`
}

// snapshotPrefix is where a cluster's snapshots live in the bucket; keys
// end in a UTC timestamp, so the last key is the latest snapshot.
func snapshotPrefix(cluster string) string { return "etcd/" + cluster + "/" }

func snapshotKey(cluster string, at time.Time) string {
	return snapshotPrefix(cluster) + at.UTC().Format("20060102T150405.000Z") + ".snapshot"
}

func (e *Env) needBackups() error {
	if e.Backups == nil {
		s, _ := config.Lookup(config.EtcdBackupBucket)
		return fail.UsageError(fmt.Errorf("no bucket for etcd snapshots: set %s (%s)", config.EtcdBackupBucket, s.Ways()))
	}
	return nil
}

// controlPlane finds the cluster's first control-plane server with an IP
// and the talosconfig to reach it.
func (e *Env) controlPlane(ctx context.Context, cluster string) (scaleway.Server, []byte, error) {
	servers, err := e.Servers.FindServers(ctx, scaleway.ClusterTags(cluster)...)
	if err != nil {
		return scaleway.Server{}, nil, fmt.Errorf("find servers of cluster %s: %w", cluster, err)
	}
	var cp *scaleway.Server
	for i := range servers {
		if roleOf(servers[i].Tags) == "controlplane" && servers[i].IPv4 != "" && (cp == nil || servers[i].Name < cp.Name) {
			cp = &servers[i]
		}
	}
	if cp == nil {
		return scaleway.Server{}, nil, fmt.Errorf("cluster %s has no control-plane server ('rawkode-cloud rebuild' builds new ones)", cluster)
	}
	tc, err := e.secret(ctx, cluster, provision.SecretTalosconfig)
	if err != nil {
		return scaleway.Server{}, nil, err
	}
	if tc == "" {
		return scaleway.Server{}, nil, fmt.Errorf("no talosconfig stored at %s: the cluster's Talos API cannot be used", provision.SecretsPath(cluster))
	}
	return *cp, []byte(tc), nil
}

// TakeSnapshot streams a snapshot from a control-plane node through Talos's
// EtcdSnapshot API and uploads it under etcd/<cluster>/<timestamp>.snapshot.
func TakeSnapshot(ctx context.Context, e *Env, cluster string, now time.Time) (_ Snapshot, rerr error) {
	if err := e.needBackups(); err != nil {
		return Snapshot{}, err
	}
	cp, tc, err := e.controlPlane(ctx, cluster)
	if err != nil {
		return Snapshot{}, err
	}
	via, closeRoute, err := e.reach(ctx, cluster, []node{{Server: cp, role: "controlplane"}})
	if err != nil {
		return Snapshot{}, err
	}
	defer func() {
		if cerr := closeRoute(); cerr != nil && rerr == nil {
			rerr = cerr
		}
	}()
	data, err := e.Talos.EtcdSnapshot(ctx, cp.IPv4, tc)
	if err != nil {
		return Snapshot{}, lockedDown(cp.IPv4, err)
	}
	key := snapshotKey(cluster, now)
	if err := e.Backups.Put(ctx, key, data); err != nil {
		return Snapshot{}, err
	}
	return Snapshot{Bucket: e.Backups.Bucket(), Key: key, Size: int64(len(data)), Node: cp.Name, Route: via}, nil
}

// LatestSnapshot is the newest snapshot of the cluster; ok is false when
// there is none.
func LatestSnapshot(ctx context.Context, e *Env, cluster string) (Snapshot, bool, error) {
	if e.Backups == nil {
		return Snapshot{}, false, nil
	}
	objs, err := e.Backups.List(ctx, snapshotPrefix(cluster))
	if err != nil {
		return Snapshot{}, false, err
	}
	for i := len(objs) - 1; i >= 0; i-- {
		if path.Ext(objs[i].Key) == ".snapshot" {
			return Snapshot{Bucket: e.Backups.Bucket(), Key: objs[i].Key, Size: objs[i].Size}, true, nil
		}
	}
	return Snapshot{}, false, nil
}

// RestoreSnapshot uploads a snapshot (the latest when key is empty) to a
// control-plane node whose etcd waits for the bootstrap and bootstraps etcd
// from it, with Talos's EtcdRecover and Bootstrap(recover_etcd). Talos
// refuses it on a running etcd: a live cluster is never overwritten.
func RestoreSnapshot(ctx context.Context, e *Env, cluster, key string, opts wait.Options) (_ Snapshot, rerr error) {
	if err := e.needBackups(); err != nil {
		return Snapshot{}, err
	}
	snap := Snapshot{Bucket: e.Backups.Bucket(), Key: key}
	if key == "" {
		latest, ok, err := LatestSnapshot(ctx, e, cluster)
		if err != nil {
			return Snapshot{}, err
		}
		if !ok {
			return Snapshot{}, fmt.Errorf("no etcd snapshot of %s in bucket %s", cluster, e.Backups.Bucket())
		}
		snap = latest
	}
	data, err := e.Backups.Get(ctx, snap.Key)
	if err != nil {
		return Snapshot{}, err
	}
	snap.Size = int64(len(data))
	cp, tc, err := e.controlPlane(ctx, cluster)
	if err != nil {
		return Snapshot{}, err
	}
	snap.Node = cp.Name
	via, closeRoute, err := e.reach(ctx, cluster, []node{{Server: cp, role: "controlplane"}})
	if err != nil {
		return Snapshot{}, err
	}
	snap.Route = via
	defer func() {
		if cerr := closeRoute(); cerr != nil && rerr == nil {
			rerr = cerr
		}
	}()
	if err := e.Talos.EtcdRecover(ctx, cp.IPv4, tc, data); err != nil {
		return Snapshot{}, lockedDown(cp.IPv4, err)
	}
	if err := e.Talos.BootstrapRecover(ctx, cp.IPv4, tc, opts); err != nil {
		return Snapshot{}, err
	}
	return snap, nil
}
