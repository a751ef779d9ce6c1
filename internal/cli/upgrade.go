package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/ops"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

func (a *app) upgradeCmd() *cobra.Command {
	var o ops.UpgradeOptions
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Upgrade Talos and/or Kubernetes one node at a time, control planes first, gated on health",
		Long: `Upgrade Talos (--talos-version) and then Kubernetes (--kubernetes-version) one node at a time, control
planes first. Before the first step and after every step the whole cluster must be healthy: every
node's services Running and healthy, and every control plane's etcd healthy and listing every control
plane as a member. The first gate that fails stops the upgrade and says on which node, before or after
which step; nodes already at the target are skipped, so once the cause is fixed the same command
continues. --dry-run prints the plan and changes nothing.

Talos: each node is sent its own install image (machine.install.image, so its Image Factory schematic
stays) with the new tag through Talos's Upgrade API; it reboots and must come back with the new version
and healthy services. Kubernetes: the kubelet, API server, controller manager, scheduler and kube-proxy
images in each node's running config are moved to the new tag and the config re-applied without a
reboot — what talosctl upgrade-k8s changes in machine config (it also rolls the manifests it manages
and checks for deprecated APIs; this does not). Every node registered and Ready is part of the gate
too, read directly where the Kubernetes API answers this machine and through Teleport on a
locked-down cluster; the progress says which.

The Talos API is reached directly where it answers this machine (a cluster a run left open, or during
an 'access open'). On a locked-down cluster upgrade keeps the lockdown and opens nothing: it reaches
each node from inside, through Teleport Kubernetes access — with a short-lived certificate for the
cluster issued to the configured Teleport identity it creates a short-lived hostNetwork pod on the
node (kube-system, pause image) and port-forwards to the node's own Talos API on loopback, which the
firewall always admits. A Talos upgrade reboots the node and its pod with it; a new pod is made once
the node is back. Every pod is deleted at the end, also on failure and Ctrl-C. The Teleport role needs
kubernetes_labels matching the cluster and kubernetes_groups [rawkode-cloud:inside-route] (bound by
provisioning to the route's rights) or [system:masters]; without Teleport,
upgrade stops before changing anything. The progress says which route was used.`,
		Example: `  rawkode-cloud upgrade --cluster-name demo --talos-version v1.12.5 --dry-run
  rawkode-cloud upgrade --cluster-name demo --talos-version v1.12.5
  rawkode-cloud upgrade --cluster-name demo --kubernetes-version 1.35.1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := ops.CheckUpgradeVersions(o.TalosVersion, o.KubernetesVersion); err != nil {
				return err
			}
			e, err := a.opsEnv(cmd, true)
			if err != nil {
				return err
			}
			defer e.Close()
			o.StepTimeout = e.Cfg.Duration(config.ServicesTimeout)
			o.Wait = wait.Options{Interval: e.Cfg.Duration(config.ServicesInterval)}
			o.Progress = func(s string) { fmt.Fprintln(a.env.Err, a.redactor.String(s)) }
			res, err := ops.Upgrade(cmd.Context(), e, e.Cfg.Get(config.ClusterName), o)
			if err != nil && len(res.Steps) == 0 {
				return err
			}
			if e.Cfg.Get(config.Output) == "json" {
				a.printJSON(res)
			} else {
				a.printUpgrade(res)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&o.TalosVersion, "talos-version", "", "Talos version to upgrade every node to (e.g. v1.12.5)")
	cmd.Flags().StringVar(&o.KubernetesVersion, "kubernetes-version", "", "Kubernetes version to move every node to (e.g. 1.35.1)")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "Print the plan and change nothing")
	settingsFlags(cmd)
	return cmd
}

func (a *app) printUpgrade(res ops.UpgradeResult) {
	title := "upgrade of " + res.Cluster
	if res.DryRun {
		title = "plan: " + title + " (dry run, nothing changed)"
	}
	fmt.Fprintln(a.env.Out, title)
	if res.Note != "" {
		fmt.Fprintln(a.env.Out, "  "+a.redactor.String(res.Note))
	}
	tw := tabwriter.NewWriter(a.env.Out, 0, 4, 2, ' ', 0)
	for i, s := range res.Steps {
		fmt.Fprintf(tw, "  %d.\t%s\t%s\t%s\t%s → %s\t%s\n", i+1, s.Node, s.Role, s.Component, s.From, s.To, s.State)
	}
	tw.Flush()
}
