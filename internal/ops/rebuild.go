package ops

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/provision"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
)

// RebuildSource gathers what a rebuild starts from: the stored secrets
// bundle (required: it is the cluster's identity) and the latest etcd
// snapshot, when a bucket is configured and holds one. It refuses while the
// cluster still has servers: a rebuild replaces lost servers, it does not
// run next to live ones.
func RebuildSource(ctx context.Context, e *Env, cluster string) (*provision.RebuildFrom, error) {
	servers, err := e.Servers.FindServers(ctx, scaleway.ClusterTags(cluster)...)
	if err != nil {
		return nil, fmt.Errorf("find servers of cluster %s: %w", cluster, err)
	}
	var alive []string
	for _, s := range servers {
		if s.Status != "deleting" {
			alive = append(alive, s.Name+" "+s.ID+" ("+s.Status+")")
		}
	}
	if len(alive) > 0 {
		return nil, fail.UsageError(fmt.Errorf("cluster %s still has server(s) %s: rebuild is for a cluster whose servers are gone ('rawkode-cloud status --cluster-name %s' shows what is wrong)",
			cluster, strings.Join(alive, ", "), cluster))
	}
	bundle, err := e.secret(ctx, cluster, provision.SecretTalosBundle)
	if err != nil {
		return nil, err
	}
	if bundle == "" {
		return nil, fail.UsageError(fmt.Errorf("no secrets bundle stored at %s: there is nothing to rebuild cluster %s from (provision creates a new cluster)",
			provision.SecretsPath(cluster), cluster))
	}
	src := &provision.RebuildFrom{Bundle: []byte(bundle)}
	latest, ok, err := LatestSnapshot(ctx, e, cluster)
	if err != nil {
		return nil, err
	}
	if ok {
		if src.Snapshot, err = e.Backups.Get(ctx, latest.Key); err != nil {
			return nil, err
		}
		src.SnapshotName = "s3://" + latest.Bucket + "/" + latest.Key
	}
	return src, nil
}

// ResumeSource gathers what `provision --resume` continues from: the
// cluster's servers, found by their tags, and its stored secrets bundle.
func ResumeSource(ctx context.Context, e *Env, cluster string) (*provision.ResumeFrom, error) {
	servers, err := e.Servers.FindServers(ctx, scaleway.ClusterTags(cluster)...)
	if err != nil {
		return nil, fmt.Errorf("find servers of cluster %s: %w", cluster, err)
	}
	var live []scaleway.Server
	for _, s := range servers {
		if s.Status != "deleting" {
			live = append(live, s)
		}
	}
	if len(live) == 0 {
		return nil, fail.UsageError(fmt.Errorf("nothing to resume: cluster %s has no server (provision builds a new cluster; rebuild builds new servers from the stored secrets)", cluster))
	}
	for _, s := range live {
		if slices.Contains(s.Tags, provision.TopologyProxmoxTag) {
			return nil, provision.ResumeProxmoxRefused(cluster)
		}
	}
	bundle, err := e.secret(ctx, cluster, provision.SecretTalosBundle)
	if err != nil {
		return nil, err
	}
	if bundle == "" {
		return nil, fail.UsageError(fmt.Errorf("cannot resume cluster %s: no secrets bundle stored at %s (the run stopped before phase 4 stored it; destroy it and provision again)",
			cluster, provision.SecretsPath(cluster)))
	}
	return &provision.ResumeFrom{Bundle: []byte(bundle), Servers: live}, nil
}

// Shape counts a cluster's servers by their role tags: how many control
// planes and workers a resumed run must expect.
func Shape(servers []scaleway.Server) (controlPlanes, workers int) {
	for _, s := range servers {
		if roleOf(s.Tags) == "controlplane" {
			controlPlanes++
		} else {
			workers++
		}
	}
	return controlPlanes, workers
}
