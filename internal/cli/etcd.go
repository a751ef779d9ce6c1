package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/ops"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

func (a *app) etcdCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "etcd",
		Short: "Back up and restore a cluster's etcd through Talos, to S3-compatible object storage",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return fail.UsageError(errors.New("etcd needs a subcommand: snapshot or restore"))
		},
	}
	snap := &cobra.Command{
		Use:   "snapshot",
		Short: "Take an etcd snapshot with Talos's EtcdSnapshot API and upload it",
		Long: `Stream a snapshot of etcd from a control-plane node (Talos's own EtcdSnapshot API) and upload it to
s3://<etcd-backup-bucket>/etcd/<cluster>/<UTC timestamp>.snapshot. The bucket is signed for with the
Scaleway access and secret keys (Scaleway Object Storage by default). The node's Talos API is reached
directly where it answers this machine; on a locked-down cluster it is reached from inside through
Teleport Kubernetes access: a short-lived hostNetwork pod on the node, port-forwarded to the node's own
Talos API on loopback, deleted afterwards (the Teleport role needs kubernetes_labels matching the
cluster and kubernetes_groups [rawkode-cloud:inside-route], which provisioning binds to the route's
rights, or [system:masters]). The output says which route was used.`,
		Example: `  rawkode-cloud etcd snapshot --cluster-name demo --etcd-backup-bucket my-etcd-backups`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := a.opsEnv(cmd, true)
			if err != nil {
				return err
			}
			defer e.Close()
			s, err := ops.TakeSnapshot(cmd.Context(), e, e.Cfg.Get(config.ClusterName), time.Now())
			if err != nil {
				return err
			}
			a.report(e.Cfg, s, fmt.Sprintf("etcd snapshot of %s (%d bytes, Talos API reached %s) uploaded to s3://%s/%s", s.Node, s.Size, routeWords(s.Route), s.Bucket, s.Key))
			return nil
		},
	}
	settingsFlags(snap)
	var key string
	restore := &cobra.Command{
		Use:   "restore",
		Short: "Restore etcd from a snapshot onto a control plane waiting for its bootstrap",
		Long: `Download a snapshot (the latest unless --snapshot names one), upload it to a control-plane node whose
etcd waits for the bootstrap (Talos's EtcdRecover) and bootstrap etcd from it. Talos refuses this on a
running etcd, so a live cluster is never overwritten: rebuild uses it for new servers.`,
		Example: `  rawkode-cloud etcd restore --cluster-name demo
  rawkode-cloud etcd restore --cluster-name demo --snapshot etcd/demo/20260101T000000.000Z.snapshot`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := a.opsEnv(cmd, true)
			if err != nil {
				return err
			}
			defer e.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), e.Cfg.Duration(config.ServicesTimeout))
			defer cancel()
			opts := wait.Options{Interval: e.Cfg.Duration(config.ServicesInterval)}
			s, err := ops.RestoreSnapshot(ctx, e, e.Cfg.Get(config.ClusterName), key, opts)
			if err != nil {
				return err
			}
			a.report(e.Cfg, s, fmt.Sprintf("etcd on %s restored from s3://%s/%s (Talos API reached %s)", s.Node, s.Bucket, s.Key, routeWords(s.Route)))
			return nil
		},
	}
	restore.Flags().StringVar(&key, "snapshot", "", "Object key of the snapshot to restore (default: the latest of the cluster)")
	settingsFlags(restore)
	cmd.AddCommand(snap, restore)
	return cmd
}

// report prints a command's result: JSON with --output json, else msg.
func (a *app) report(cfg *config.Config, v any, msg string) {
	if cfg.Get(config.Output) == "json" {
		a.printJSON(v)
		return
	}
	fmt.Fprintln(a.env.Out, a.redactor.String(msg))
}
