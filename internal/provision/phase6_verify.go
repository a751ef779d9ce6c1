package provision

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/teleport"
)

// verifyAndLockDown is phase 6. Only once Teleport lists the cluster's kube
// agent is there another way in, so only then are the operator's openings
// removed. If the agent never shows up, nothing is undone: the server stays
// with the firewall open so the operator can find out why (exit 3).
func (p *Provisioner) verifyAndLockDown(ctx context.Context, r *pipeline.Run) error {
	name := p.clusterName()
	w := r.Wait("kube agent of "+name+" to register with Teleport", p.timeout(config.TeleportAgentTimeout), p.cfg.Duration(config.TeleportAgentPollInterval))
	wctx, cancel := w.Context(ctx)
	err := p.tp.WaitKubeServer(wctx, name, w.Options())
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return err // interrupted: undo as usual
		}
		// The server stays for debugging: let the kubeconfig, fetched
		// alongside the wait, be stored first rather than cancelled.
		_ = p.kubeTask.Wait(ctx)
		return pipeline.LeaveRunning(fmt.Errorf("Teleport verification failed: %w", err), p.debugHint())
	}
	w.Done()

	// The agent has its own identity now; a join token left valid is only a
	// liability. Deleting it does not hold up the lockdown.
	tok := p.token
	tokenGone := p.spawn(r, func(ctx context.Context) error {
		// Bounded tighter than other calls: the token expires by itself, so a
		// slow Teleport must not hold up a cluster that is otherwise done.
		budget := tokenDeleteBudget
		if b := p.opts.Factory.CallBudget; b > 0 && b < budget {
			budget = b
		}
		ctx, cancel := context.WithTimeout(ctx, budget)
		defer cancel()
		if err := p.tp.DeleteToken(ctx, tok.Name); err != nil {
			r.Warn("could not delete the used join token; it expires by itself", map[string]any{"token": teleport.Redact(tok.Name), "expires": tok.Expires})
		}
		return nil
	})

	// The kubeconfig comes over the Talos API, which the lockdown closes
	// to us: its fetch, retries included, must be over before.
	if err := p.kubeTask.Wait(ctx); err != nil {
		return err
	}

	ip := p.publicIP
	applied, err := p.talos.ApplySecure(ctx, ip, p.artifacts.Talosconfig, p.artifacts.Lockdown)
	if err != nil {
		return fmt.Errorf("lockdown: %w", err)
	}
	if !applied {
		return fmt.Errorf("apply lockdown config to %s: the node did not confirm it", ip)
	}
	ports := []int{machineconfig.TalosAPIPort, machineconfig.KubernetesAPIPort}
	open, err := p.talos.ProbePorts(ctx, ip, ports)
	if err != nil {
		return fmt.Errorf("verify lockdown: %w", err)
	}
	var still []string
	for _, port := range ports {
		if open[port] {
			still = append(still, fmt.Sprint(port))
		}
	}
	sort.Strings(still)
	if len(still) > 0 {
		return fmt.Errorf("lockdown of %s did not take: TCP %s still reachable from here", ip, strings.Join(still, ", "))
	}
	p.lockedDown = true
	r.Info("locked down: Talos API and Kubernetes API no longer reachable from the internet", map[string]any{"ip": ip, "ports_closed": ports})
	_ = tokenGone.Wait(ctx)
	return nil
}

// tokenDeleteBudget bounds the clean-up of the used join token.
const tokenDeleteBudget = 30 * time.Second

// debugHint tells the operator what to check when the agent did not register.
func (p *Provisioner) debugHint() string {
	var b strings.Builder
	fmt.Fprintf(&b, "The server was left running with the temporary firewall open, so you can look at it:\n")
	fmt.Fprintf(&b, "  server:        %s (zone %s)\n", p.server.ID, p.server.Zone)
	fmt.Fprintf(&b, "  IP:            %s (Talos API and Kubernetes API open to %s only)\n", p.publicIP, p.operatorIP)
	fmt.Fprintf(&b, "  join token:    %s… expires %s\n", teleport.Redact(p.token.Name), p.token.Expires.UTC().Format("2006-01-02 15:04:05Z"))
	fmt.Fprintf(&b, "  credentials:   %s\n", p.stored)
	fmt.Fprintf(&b, "Check: talosctl -n %s logs kubelet; kubectl -n teleport logs statefulset/teleport-kube-agent;\n", p.publicIP)
	fmt.Fprintf(&b, "       that the proxy %s is reachable from the node and the token has not expired.\n", p.cfg.Get(config.TeleportProxy))
	fmt.Fprintf(&b, "Remove everything with: rawkode-cloud destroy --cluster-name %s", p.clusterName())
	return b.String()
}
