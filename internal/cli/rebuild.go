package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/ops"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/provision"
)

func (a *app) rebuildCmd() *cobra.Command {
	o := &provisionOptions{rebuild: true}
	cmd := &cobra.Command{
		Use:   "rebuild",
		Short: "Rebuild a cluster whose servers are gone, from what the secret store holds",
		Long: `Build new servers for a cluster whose servers are gone, with the secrets bundle stored for it: the
cluster keeps its identity, certificates and Teleport registration name. etcd is restored from the
latest snapshot in etcd-backup-bucket when there is one (otherwise it starts empty and Flux restores
the workloads from Git). Then DNS, Teleport and the lockdown, as provision does. Refused while the
cluster still has servers. The stored credentials are never removed, also when the rebuild fails.

` + exitCodeHelp(),
		Example: `  rawkode-cloud rebuild --cluster-name demo
  rawkode-cloud rebuild --cluster-name demo --etcd-backup-bucket my-etcd-backups`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runProvision(cmd, o)
		},
	}
	settingsFlags(cmd)
	o.addFlags(cmd)
	return cmd
}

// rebuildSource reads what a rebuild starts from and says so.
func (a *app) rebuildSource(ctx context.Context, f provision.Factory, cfg *config.Config, sink pipeline.Sink) (*provision.RebuildFrom, error) {
	if !cfg.IsSet(config.ClusterName) {
		return nil, fail.UsageError(errors.New("name the cluster to rebuild: --cluster-name NAME ('rawkode-cloud list' shows them)"))
	}
	e, err := ops.Open(ctx, f, cfg, a.redactor.Add)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	src, err := ops.RebuildSource(ctx, e, cfg.Get(config.ClusterName))
	if err != nil {
		return nil, err
	}
	msg := "rebuilding from the stored secrets bundle; no etcd snapshot found, etcd starts empty (Flux restores the workloads)"
	if src.Snapshot != nil {
		msg = "rebuilding from the stored secrets bundle and etcd snapshot " + src.SnapshotName
	}
	sink.Emit(pipeline.Event{Type: pipeline.EventInfo, Time: time.Now(), Phase: "rebuild", Message: msg})
	return src, nil
}

// resumeSource finds what provision --resume continues from and says so.
func (a *app) resumeSource(ctx context.Context, f provision.Factory, cfg *config.Config, sink pipeline.Sink) (*provision.ResumeFrom, error) {
	if !cfg.IsSet(config.ClusterName) {
		return nil, fail.UsageError(errors.New("name the cluster to resume: --cluster-name NAME ('rawkode-cloud list' shows them)"))
	}
	if cfg.Get(config.Topology) == config.TopologyProxmox {
		return nil, provision.ResumeProxmoxRefused(cfg.Get(config.ClusterName))
	}
	e, err := ops.Open(ctx, f, cfg, a.redactor.Add)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	src, err := ops.ResumeSource(ctx, e, cfg.Get(config.ClusterName))
	if err != nil {
		return nil, err
	}
	// The cluster's shape is what its servers say (their role tags); a
	// number given explicitly must agree with it.
	cps, workers := ops.Shape(src.Servers)
	for _, c := range []struct {
		name string
		n    int
	}{{config.ControlPlanes, cps}, {config.Workers, workers}} {
		v := cfg.Value(c.name)
		switch {
		case v.Raw == strconv.Itoa(c.n):
		case v.Source == config.FromDefault || v.Source == config.Unset || v.Raw == "":
			cfg.Set(c.name, strconv.Itoa(c.n), config.FromDefault, "the cluster's servers")
		default:
			return nil, fail.UsageError(fmt.Errorf("cluster %s has %d %s by its servers' role tags, but %s is %s (%s): resume keeps the cluster's shape",
				cfg.Get(config.ClusterName), c.n, c.name, c.name, v.Raw, describeSource(v)))
		}
	}
	sink.Emit(pipeline.Event{Type: pipeline.EventInfo, Time: time.Now(), Phase: "resume",
		Message: fmt.Sprintf("resuming cluster %s: %d server(s) found by their tags, secrets bundle from the secret store", cfg.Get(config.ClusterName), len(src.Servers))})
	return src, nil
}
