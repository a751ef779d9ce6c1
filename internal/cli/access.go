package cli

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/ops"
)

// maxOpening bounds a break-glass opening: it is for an emergency, not a
// way of life.
const maxOpening = 24 * time.Hour

// closeBudget bounds the closing after the opening's time is up or Ctrl-C:
// long enough for a slow node, short enough that a hung one is reported.
const closeBudget = 5 * time.Minute

func (a *app) accessCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "access",
		Short: "Open a cluster's Talos and Kubernetes APIs to this machine for a while (break glass), or close them",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return fail.UsageError(errors.New("access needs a subcommand: open or close"))
		},
	}
	var dur time.Duration
	open := &cobra.Command{
		Use:   "open",
		Short: "Open the Talos API (50000) and Kubernetes API (6443) to this machine's /32 until --for runs out or Ctrl-C",
		Long: `Open the Talos API (50000) of every node, and the Kubernetes API (6443) of every control plane, to this
machine's public IPv4 /32 only (operator-ip, detected when empty), then wait in the foreground. When
--for runs out, or on Ctrl-C, the opening is closed again and the tool proves from here that both
ports no longer answer. The opening's end is recorded on the cluster's servers (an access-until tag)
before any node changes, so 'status' shows it and 'access close' finds one a crashed process left.

The nodes' firewall is their machine config, which changes only through the Talos API: each node's
running config is read back and only its operator rules change. Where the Talos API answers this
machine (a cluster a run left open with exit 3 or --keep-on-failure) that is done directly; on a
locked-down cluster it is done from inside: through Teleport Kubernetes access (a short-lived
certificate for the cluster, issued to the configured Teleport identity) a short-lived hostNetwork
pod is created on each node in kube-system and port-forwarded to the node's own Talos API on
loopback, which the lockdown still admits; the pods are deleted once the opening is applied. The
Teleport role needs kubernetes_labels matching the cluster and kubernetes_groups
[rawkode-cloud:inside-route] (bound by provisioning to the route's rights) or [system:masters].`,
		Example: `  rawkode-cloud access open --cluster-name demo --for 30m`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dur <= 0 || dur > maxOpening {
				return fail.UsageError(fmt.Errorf("--for %s: want a duration above 0 and at most %s, e.g. --for 30m", dur, maxOpening))
			}
			e, err := a.opsEnv(cmd, true)
			if err != nil {
				return err
			}
			defer e.Close()
			ctx := cmd.Context()
			cluster := e.Cfg.Get(config.ClusterName)
			operator, err := operatorAddress(ctx, e)
			if err != nil {
				return err
			}
			until := time.Now().Add(dur)
			op, err := ops.OpenAccess(ctx, e, cluster, operator, until)
			if err != nil {
				if errors.Is(err, ops.ErrLockedDown) {
					return err // nothing was changed
				}
				// Part of it may be open: close whatever is.
				if _, cerr := a.closeAccess(ctx, e, cluster); cerr != nil {
					return errors.Join(err, cerr)
				}
				return err
			}
			fmt.Fprintln(a.env.Err, a.redactor.String(fmt.Sprintf("%s: Talos API (and Kubernetes API on control planes) open to %s on %s until %s (applied %s); Ctrl-C closes it early",
				cluster, op.Operator, strings.Join(op.Nodes, ", "), until.UTC().Format(time.RFC3339), routeWords(op.Route))))
			timer := time.NewTimer(time.Until(until))
			defer timer.Stop()
			why := "time is up"
			select {
			case <-timer.C:
			case <-ctx.Done():
				why = "interrupted"
			}
			cl, err := a.closeAccess(ctx, e, cluster)
			if err != nil {
				return err
			}
			a.report(e.Cfg, cl, fmt.Sprintf("%s: opening closed (%s); 50000 and 6443 no longer answer from here", cluster, why))
			return nil
		},
	}
	open.Flags().DurationVar(&dur, "for", 30*time.Minute, "How long the opening lasts (at most 24h)")
	settingsFlags(open)
	closeCmd := &cobra.Command{
		Use:   "close",
		Short: "Close any opening of a cluster's APIs to this machine, and prove it closed",
		Long: `Remove the operator rules from every node whose Talos API still answers this machine, prove from here
that 50000 and 6443 no longer answer, and then remove the recorded opening from the servers. It closes
an opening a crashed 'access open' left behind, and the operator rules a provisioning run left in
place when it stopped with exit 3 (which completes that cluster's lockdown).`,
		Example: `  rawkode-cloud access close --cluster-name demo`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := a.opsEnv(cmd, true)
			if err != nil {
				return err
			}
			defer e.Close()
			cluster := e.Cfg.Get(config.ClusterName)
			cl, err := a.closeAccess(cmd.Context(), e, cluster)
			if err != nil {
				return err
			}
			msg := fmt.Sprintf("%s: closed on %d node(s), already closed on %d; 50000 and 6443 do not answer from here", cluster, len(cl.Closed), len(cl.AlreadyClosed))
			a.report(e.Cfg, cl, msg)
			return nil
		},
	}
	settingsFlags(closeCmd)
	cmd.AddCommand(open, closeCmd)
	return cmd
}

// closeAccess closes with its own deadline: Ctrl-C cancelled the command's
// context, and the closing must still happen.
func (a *app) closeAccess(ctx context.Context, e *ops.Env, cluster string) (ops.Closing, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeBudget)
	defer cancel()
	return ops.CloseAccess(cctx, e, cluster)
}

// operatorAddress is operator-ip, or this machine's detected address.
func operatorAddress(ctx context.Context, e *ops.Env) (netip.Addr, error) {
	if v := e.Cfg.Get(config.OperatorIP); v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return netip.Addr{}, fail.UsageError(fmt.Errorf("%s %q: %w", config.OperatorIP, v, err))
		}
		return a, nil
	}
	a, err := e.IP.Detect(ctx)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("detect this machine's public IPv4 (set %s to skip detection): %w", config.OperatorIP, err)
	}
	return a, nil
}

// routeWords says how a node's Talos API was reached.
func routeWords(via string) string {
	if via == ops.ViaInside {
		return "from inside the cluster: Teleport Kubernetes access → hostNetwork pod → apid on loopback"
	}
	return "directly"
}
