package provision

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/teleport"
)

// verifyAndLockDown is phase 6: every verification (verify.go) must pass;
// only then is there another way in than the operator's openings, so only
// then are they removed from every node. If a verification fails, nothing
// is undone: the nodes stay with the firewall open so the operator can find
// out why (exit 3).
func (p *Provisioner) verifyAndLockDown(ctx context.Context, r *pipeline.Run) error {
	if err := p.verify(ctx, r); err != nil {
		if ctx.Err() != nil {
			return err // interrupted: undo as usual
		}
		// The nodes stay for debugging: let the kubeconfig, fetched
		// alongside the checks, be stored first rather than cancelled. A
		// kubeconfig that could not be fetched at all is no verification
		// failure but phase 5's work gone wrong: undo, as before the
		// Kubernetes checks needed it (exit 1).
		if _, kerr := p.kubeconfig.Get(ctx, r); kerr != nil {
			return kerr
		}
		return pipeline.LeaveRunning(err, p.debugHint())
	}

	// The agent has its own identity now; a join token left valid is only a
	// liability. Deleting it does not hold up the lockdown.
	// Every token the run minted goes: a renewal interrupted by the agent
	// joining may have left the one it replaced.
	toks := p.mintedTokens()
	tokenGone := &pipeline.Work[struct{}]{Name: "used join token deleted", Do: func(ctx context.Context, r *pipeline.Run) (struct{}, error) {
		for _, tok := range toks {
			if err := p.deleteToken(ctx, tok.Name); err != nil { // bounded: token.go
				r.Warn("could not delete the used join token; it expires by itself", map[string]any{"token": teleport.Redact(tok.Name), "expires": tok.Expires})
			}
		}
		return struct{}{}, nil
	}}
	p.ahead(r, tokenGone)

	// The kubeconfig comes over the Talos API, which the lockdown closes
	// to us: its fetch, retries included, must be over before.
	if _, err := p.kubeconfig.Get(ctx, r); err != nil {
		return err
	}
	// The lockdown needs the nodes to admit us. If this machine's IP
	// changed, they cannot, and a cluster that is up and registered with
	// Teleport must not be deleted for it: leave it running, say why.
	if err := p.operatorIPChanged(ctx); err != nil {
		return pipeline.LeaveRunning(fmt.Errorf("lockdown: %w", err), p.ipChangedHint())
	}
	if err := eachNode(p.nodes, func(n *Node) error { return p.lockDown(ctx, r, n) }); err != nil {
		return err
	}
	if p.host != nil {
		// The tokens live on the Teleport VM: deleting them needs the
		// provisioner's identity, which dropProvisioner takes away.
		_, _ = tokenGone.Get(ctx, r)
		p.host.dropProvisioner(ctx, r)
		if err := p.host.LockDown(ctx, r); err != nil {
			return err
		}
	}
	_, _ = tokenGone.Get(ctx, r)
	return nil
}

// lockDown re-applies node n's config without the operator's openings and
// confirms from here that its APIs are closed.
func (p *Provisioner) lockDown(ctx context.Context, r *pipeline.Run, n *Node) error {
	ip := n.IP()
	applied, err := p.talos.ApplySecure(ctx, ip, p.talosconfig, n.lockdown)
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
	n.lockedDown = true
	r.Info("locked down: Talos API and Kubernetes API no longer reachable from the internet", map[string]any{"ip": ip, "ports_closed": ports})
	return nil
}

// ipChangedHint says what to do with a healthy cluster that could not be
// locked down because this machine's IP changed.
func (p *Provisioner) ipChangedHint() string {
	var b strings.Builder
	fmt.Fprintf(&b, "The cluster is up and its kube agent is registered with Teleport (tsh kube login %s), but its\n", p.clusterName())
	fmt.Fprintf(&b, "Talos and Kubernetes APIs are still open to %s only, which is no longer this machine.\n", p.operatorIP)
	fmt.Fprintf(&b, "Lock it down from a machine with that address, or remove it with: rawkode-cloud destroy --cluster-name %s", p.clusterName())
	return b.String()
}

// tokenDeleteBudget bounds the clean-up of the used join token.
const tokenDeleteBudget = 30 * time.Second

// debugHint tells the operator what to check when a verification failed.
func (p *Provisioner) debugHint() string {
	var b strings.Builder
	fmt.Fprintf(&b, "The server was left running with the temporary firewall open, so you can look at it:\n")
	for _, n := range p.nodes {
		fmt.Fprintf(&b, "  server:        %s (zone %s)\n", n.Machine.ID, n.Machine.Zone)
		fmt.Fprintf(&b, "  IP:            %s (Talos API and Kubernetes API open to %s only)\n", n.IP(), p.operatorIP)
	}
	tok := p.currentToken()
	fmt.Fprintf(&b, "  join token:    %s… expires %s\n", teleport.Redact(tok.Name), tok.Expires.UTC().Format("2006-01-02 15:04:05Z"))
	fmt.Fprintf(&b, "  credentials:   %s\n", p.stored)
	fmt.Fprintf(&b, "Check: talosctl -n %s logs kubelet; kubectl -n teleport logs statefulset/teleport-kube-agent;\n", p.bootstrapNode().IP())
	fmt.Fprintf(&b, "       that the proxy %s is reachable from the node and the token has not expired.\n", p.kubeAgentProxy())
	fmt.Fprintf(&b, "Remove everything with: rawkode-cloud destroy --cluster-name %s", p.clusterName())
	return b.String()
}
