package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/ops"
	"github.com/rawkode/rawkode-cloud/internal/provision"
)

// opsEnv loads the settings and opens the clients a day-two command uses;
// a served sandbox (sandbox-url) stands in for every service.
func (a *app) opsEnv(cmd *cobra.Command, needCluster bool) (*ops.Env, error) {
	ctx := cmd.Context()
	cfg, err := a.loadConfig(cmd)
	if err != nil {
		return nil, err
	}
	f, err := a.dayTwoFactory(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if needCluster && !cfg.IsSet(config.ClusterName) {
		return nil, fail.UsageError(errors.New("name the cluster: --cluster-name NAME ('rawkode-cloud list' shows them)"))
	}
	return ops.Open(ctx, f, cfg, a.redactor.Add)
}

func (a *app) dayTwoFactory(ctx context.Context, cfg *config.Config) (provision.Factory, error) {
	if cfg.IsSet(config.SandboxURL) {
		return a.connectServed(ctx, cfg)
	}
	return a.factory(), nil
}

func (a *app) statusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Say how a cluster is doing, from outside and without opening it",
		Long: `Report a cluster's servers, its Teleport registration, its DNS record, whether its API ports are
closed from here, a recorded break-glass opening, what the secret store holds for it, each node's Talos
version, services and etcd membership where the Talos API answers, and whether every node is Ready
where the Kubernetes API answers — each ok, degraded, down or unknown.

A locked-down cluster keeps the Talos and Kubernetes APIs closed to the internet, and status does not
reopen them: from here it sees the servers, DNS, the ports (closed, as they must be) and the secret
store, and through Teleport the kube agent's registration — the agent heartbeats from inside the
cluster, so it proves the API server and the pod network work. The Talos API of a node is read
directly where it answers this machine (a cluster a failed run left open, or during an 'access open');
on a locked-down cluster it is read from inside, through Teleport Kubernetes access: a short-lived
hostNetwork pod on the node, port-forwarded to the node's own Talos API on loopback, and deleted
afterwards (the Teleport role needs kubernetes_labels matching the cluster and kubernetes_groups
[rawkode-cloud:inside-route], which provisioning binds to the route's rights, or [system:masters]). Each talos check names its route; where the inside route is not available the
node is "unknown", which does not make the cluster unhealthy. Node readiness is read where 6443
answers, otherwise through Teleport along with the inside route, and is "unknown" without either. An opening still recorded after its end (its process died) is "degraded": 'access close'
closes it.

Exit code 0 when healthy, 1 when degraded or down.`,
		Example: `  rawkode-cloud status --cluster-name demo
  rawkode-cloud status --cluster-name demo --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := a.opsEnv(cmd, true)
			if err != nil {
				return err
			}
			defer e.Close()
			cluster := e.Cfg.Get(config.ClusterName)
			rep, err := ops.Status(cmd.Context(), e, cluster, time.Now())
			if err != nil {
				return err
			}
			if e.Cfg.Get(config.Output) == "json" {
				a.printJSON(rep)
			} else {
				a.printStatus(rep)
			}
			if !rep.Healthy() {
				return fail.WithCode(fmt.Errorf("cluster %s is %s", cluster, rep.State), fail.Failed)
			}
			return nil
		},
	}
	settingsFlags(cmd)
	return cmd
}

func (a *app) printStatus(rep ops.Report) {
	fmt.Fprintf(a.env.Out, "cluster %s: %s\n", rep.Cluster, rep.State)
	tw := tabwriter.NewWriter(a.env.Out, 0, 4, 2, ' ', 0)
	for _, c := range rep.Checks {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.State, c.Component, c.Subject, a.redactor.String(c.Detail))
	}
	tw.Flush()
}

func (a *app) listCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every cluster the credentials can see, one line each",
		Long: `List the clusters found by their servers' tags and by what the secret store keeps for them (a cluster
whose servers are gone but whose credentials are stored can be rebuilt), with their servers and
whether their kube agent is registered with Teleport.`,
		Example: `  rawkode-cloud list
  rawkode-cloud list --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := a.opsEnv(cmd, false)
			if err != nil {
				return err
			}
			defer e.Close()
			lines, err := ops.List(cmd.Context(), e)
			if err != nil {
				return err
			}
			if e.Cfg.Get(config.Output) == "json" {
				a.printJSON(lines)
				return nil
			}
			if len(lines) == 0 {
				fmt.Fprintln(a.env.Out, "no clusters")
				return nil
			}
			tw := tabwriter.NewWriter(a.env.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSERVERS\tTELEPORT\tSECRETS")
			for _, l := range lines {
				servers := strings.Join(l.Servers, "; ")
				if servers == "" {
					servers = "none"
				}
				secrets := "stored"
				if !l.Secrets {
					secrets = "none"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", l.Name, servers, l.Teleport, secrets)
			}
			return tw.Flush()
		},
	}
	settingsFlags(cmd)
	return cmd
}
