package cli

import (
	"github.com/spf13/cobra"
)

func (a *app) provisionCmd() *cobra.Command {
	o := &provisionOptions{}
	cmd := &cobra.Command{
		Use:   "provision",
		Short: "Order servers, install Talos, bootstrap Kubernetes, register it with Teleport and lock it down",
		Long: `Run the seven phases: resolve secrets, order the servers, wait for the installs and Talos, point DNS
at the control planes, generate every node's Talos configuration, bootstrap the cluster, then verify
it (Teleport, etcd membership) and lock the Talos and Kubernetes API ports on every node. Any failure
removes what was created, newest first.

One node by default; --control-planes 3 (or 5) and --workers N build a highly available cluster:
every server is ordered at once and installed in parallel, etcd is bootstrapped once on the first
control plane and joined by the others, and the DNS name gets one A record per control plane.

` + exitCodeHelp(),
		Example: `  # Everything against local emulators: no account needed
  rawkode-cloud provision --sandbox

  # A highly available cluster: 3 control planes and 2 workers
  rawkode-cloud provision --sandbox --control-planes 3 --workers 2

  # Rehearse a failure: watch the undo remove everything, newest first
  rawkode-cloud provision --sandbox --sandbox-fault talos.bootstrap=error
  rawkode-cloud provision --sandbox --sandbox-fault list

  # Measure what the CLI adds on top of the hardware
  rawkode-cloud provision --sandbox --report report.json

  # Settings from Infisical
  rawkode-cloud provision --infisical-url https://infisical.example.com \
    --infisical-client-id $CLIENT_ID --infisical-client-secret $CLIENT_SECRET \
    --infisical-project-id $PROJECT_ID

  # Settings as flags
  rawkode-cloud provision --cluster-name my-cluster \
    --scaleway-offer-id $OFFER_ID --scaleway-os-id $OS_ID \
    --scaleway-access-key $SCW_ACCESS_KEY --scaleway-secret-key $SCW_SECRET_KEY \
    --scaleway-project-id $SCW_PROJECT_ID --teleport-proxy teleport.example.com:443 \
    --cloudflare-api-token $CF_API_TOKEN --cloudflare-zone-id $CF_ZONE_ID \
    --cloudflare-dns-name k8s.example.com --secrets-out ./secrets`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runProvision(cmd, o) },
	}
	settingsFlags(cmd)
	o.addFlags(cmd)
	return cmd
}

func (a *app) destroyCmd() *cobra.Command {
	o := &destroyOptions{}
	cmd := &cobra.Command{
		Use:   "destroy",
		Short: "Remove a cluster's servers, DNS records and Teleport tokens",
		Long: `Delete every server of a cluster (every node) and wait until they are gone, delete the DNS records
pointing at them and the outstanding Teleport join tokens, and with --delete-secrets the secrets stored for the
cluster in Infisical. Settings are checked and everything is found first; on a terminal the list is
shown and you are asked before anything is removed. A --server-id not found in --scaleway-zone is
looked for in the other Elastic Metal zones. Destroying something already gone succeeds and says so.

` + destroyExitCodeHelp(),
		Example: `  rawkode-cloud destroy --server-id 11111111-2222-3333-4444-555555555555
  rawkode-cloud destroy --cluster-name my-cluster --yes
  rawkode-cloud destroy --sandbox --cluster-name demo`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runDestroy(cmd, o) },
	}
	settingsFlags(cmd)
	o.addFlags(cmd)
	return cmd
}

func (a *app) planCmd() *cobra.Command {
	o := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what provision would do, without creating anything",
		Long: `Show each phase, the resources it would create, the firewall openings, and the waits with their
timeouts. Needs no Scaleway, Cloudflare or Teleport credentials. With --render DIR, also write the
artifacts the nodes would receive (user data, machine configs, talosconfig); files holding secrets are
created with mode 0600. One node's configs are controlplane.yaml and controlplane-lockdown.yaml; with
several (--control-planes, --workers) every node gets <node>.yaml and <node>-lockdown.yaml.`,
		Example: `  rawkode-cloud plan --cluster-name demo --teleport-proxy teleport.example.com:443
  rawkode-cloud plan --cluster-name demo --render ./artifacts
  rawkode-cloud plan --cluster-name demo --control-planes 3 --workers 1 --render ./artifacts`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runPlan(cmd, o) },
	}
	settingsFlags(cmd)
	o.addFlags(cmd)
	return cmd
}
