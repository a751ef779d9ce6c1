package provision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/teleport"
)

// The kube agent's join token has a TTL (teleport-token-ttl), and a run can
// outlast it: a slow delivery or pivot before the config is handed over, a
// node that takes long to bootstrap, a resumed run. An agent that presents
// an expired token is refused and never registers, which phase 6 would
// report as "verification failed" after its whole wait. So the run renews
// the token wherever that can happen:
//
//   - before a config carrying it is handed to a node (phase 5), when less
//     than half of its life is left or Teleport no longer has it;
//   - while phase 6 waits for the agent, when Teleport no longer has it or
//     it expires within a tenth of its TTL: the new token goes to every node
//     by a no-reboot re-apply (it is an inline manifest), and the agent,
//     which keeps restarting until it joins, picks it up.
//
// Teleport, not this machine's clock, says whether a token is still valid
// (TokenExpiry): its clock decides the expiry, and a token can be removed.
// Every renewal deletes the token it replaces; the tokens this run minted
// are all deleted once the agent has joined.

// tokenTTL is the join token's lifetime on the run's clock (the sandbox's
// runs faster: Factory.TimeScale).
func (p *Provisioner) tokenTTL() time.Duration {
	ttl := p.cfg.Duration(config.TeleportTokenTTL)
	if s := p.opts.Factory.TimeScale; s > 0 {
		ttl = time.Duration(float64(ttl)/s) + p.opts.Factory.TimeSlack
	}
	return ttl
}

// mintToken creates a join token for the cluster's kube agent and pushes
// its undo right after. It becomes the run's token.
func (p *Provisioner) mintToken(ctx context.Context, r *pipeline.Run) (teleport.Token, error) {
	ttl := p.tokenTTL()
	tok, err := p.tp.CreateKubeToken(ctx, p.clusterName(), ttl)
	if tok.Name != "" {
		// Also when the create failed: a request cut off or lost may have
		// created it. Deleting a token that does not exist succeeds.
		p.opts.Redactor.Add(tok.Name)
		expires := tok.Expires.UTC().Format("15:04:05Z")
		r.Undo(pipeline.UndoStep{
			Resource: tokenResource(tok),
			Command:  fmt.Sprintf("tctl tokens rm <token %s> (it expires by itself at %s)", teleport.Redact(tok.Name), expires),
			Do:       func(ctx context.Context) error { return p.tp.DeleteToken(ctx, tok.Name) },
		})
	}
	if err != nil {
		return teleport.Token{}, fmt.Errorf("create Teleport join token: %w", err)
	}
	p.tokMu.Lock()
	p.token = tok
	p.minted = append(p.minted, tok)
	p.tokMu.Unlock()
	return tok, nil
}

// tokenResource names a token in undo steps and leftovers.
func tokenResource(tok teleport.Token) string {
	return fmt.Sprintf("Teleport join token %s (expires %s)", teleport.Redact(tok.Name), tok.Expires.UTC().Format("15:04:05Z"))
}

// currentToken is the token the nodes' configs carry now.
func (p *Provisioner) currentToken() teleport.Token {
	p.tokMu.Lock()
	defer p.tokMu.Unlock()
	return p.token
}

// mintedTokens are every token this run created, renewed ones included.
func (p *Provisioner) mintedTokens() []teleport.Token {
	p.tokMu.Lock()
	defer p.tokMu.Unlock()
	return append([]teleport.Token(nil), p.minted...)
}

// tokenStale says why the run's token must be renewed before an agent may
// rely on it ("" when it need not): Teleport no longer has it, or it
// expires within ahead.
func (p *Provisioner) tokenStale(ctx context.Context, ahead time.Duration) (string, error) {
	tok := p.currentToken()
	expires, err := p.tp.TokenExpiry(ctx, tok.Name)
	if errors.Is(err, teleport.ErrNotFound) {
		return "Teleport no longer has it (expired or removed)", nil
	}
	if err != nil {
		return "", err
	}
	if left := time.Until(expires); !expires.IsZero() && left < ahead {
		return fmt.Sprintf("it expires at %s, in %s", expires.UTC().Format("15:04:05Z"), left.Round(time.Second)), nil
	}
	return "", nil
}

// renewToken replaces the run's token with a new one: minted (its undo
// pushed at once), every node's configs rendered again with it, handed to
// the nodes when they run a config already (handOver), and the old one
// deleted — an agent that has not joined cannot use it any more, and a
// valid token left behind is a way into the cluster's Teleport. The
// deletion comes last and is bounded: the agent waits for nothing else.
func (p *Provisioner) renewToken(ctx context.Context, r *pipeline.Run, why string, handOver bool) error {
	old := p.currentToken()
	tok, err := p.mintToken(ctx, r)
	if err != nil {
		return fmt.Errorf("renew the join token (%s): %w", why, err)
	}
	bundle, err := p.bundle.Get(ctx, r)
	if err != nil {
		return fmt.Errorf("generate Talos secrets: %w", err)
	}
	if err := p.renderNodeConfigs(ctx, bundle); err != nil {
		return err
	}
	r.Info("Teleport join token renewed: "+why, map[string]any{"old_token": teleport.Redact(old.Name), "token": teleport.Redact(tok.Name),
		"expires": tok.Expires.UTC().Format(time.RFC3339)})
	if handOver {
		if err := eachNode(p.nodes, func(n *Node) error { return p.handOver(ctx, n) }); err != nil {
			return fmt.Errorf("hand the renewed join token to the nodes: %w", err)
		}
		r.Info("renewed join token handed to every node (config re-applied over mTLS, no reboot)", map[string]any{"nodes": len(p.nodes)})
	}
	if err := p.deleteToken(ctx, old.Name); err != nil {
		r.Warn("could not delete the replaced join token; it expires by itself", map[string]any{"token": teleport.Redact(old.Name), "error": err.Error()})
		return nil // its undo stays: cleanup tries again
	}
	r.Removed(tokenResource(old))
	return nil
}

// deleteToken deletes a join token within a tighter bound than other
// calls: the token expires by itself, so a slow Teleport must not hold up
// a run that is otherwise going well.
func (p *Provisioner) deleteToken(ctx context.Context, name string) error {
	budget := tokenDeleteBudget
	if b := p.opts.Factory.CallBudget; b > 0 && b < budget {
		budget = b
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	return p.tp.DeleteToken(ctx, name)
}

// freshTokenBeforeHanding renews the token before phase 5 hands the nodes
// configs carrying it, when less than half of its life is left: the
// reboot, etcd and the agent's start still come after. A failed look-up
// only warns: the phase-6 renewal still covers an expired token. Nodes that
// run their configs already (the proxmox topology's VMs booted with them)
// get the renewed one over mTLS (handOver): phase 5 applies nothing to
// them, and renewing deletes the token they carry.
func (p *Provisioner) freshTokenBeforeHanding(ctx context.Context, r *pipeline.Run, handOver bool) error {
	why, err := p.tokenStale(ctx, p.tokenTTL()/2)
	if err != nil {
		r.Warn("could not ask Teleport about the join token before handing it over", map[string]any{"error": err.Error()})
		return nil
	}
	if why == "" {
		return nil
	}
	if handOver {
		return p.renewToken(ctx, r, why+", before the nodes' agents start", true)
	}
	return p.renewToken(ctx, r, why+", before handing it to the nodes", false)
}

// keepTokenValid runs while phase 6 waits for the agent (until ctx ends):
// every interval it asks Teleport about the token, and when it is gone or
// about to expire, renews it and hands it to every node without a reboot.
// Each renewal runs to its end on the run's context (runCtx), so that no
// node is left between two tokens when the agent joins meanwhile. An error
// is a renewal that failed: the agent cannot join then.
func (p *Provisioner) keepTokenValid(ctx, runCtx context.Context, r *pipeline.Run, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Second
	}
	ahead := p.tokenTTL() / 10
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		// Asked on the run's context: a question cut off when the agent
		// joins would be a request sent that Teleport may never see.
		why, err := p.tokenStale(runCtx, ahead)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			// Only a look-up failed: the token may well be fine.
			r.Warn("could not ask Teleport about the join token; trying again", map[string]any{"error": err.Error()})
		case why != "":
			if err := p.renewToken(runCtx, r, why+", and the kube agent has not joined", true); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// handOver re-applies node n's config over mTLS, without a reboot.
func (p *Provisioner) handOver(ctx context.Context, n *Node) error {
	applied, err := p.talos.ApplySecure(ctx, n.IP(), p.talosconfig, n.config)
	if err != nil {
		return err
	}
	if !applied {
		return fmt.Errorf("node %s did not confirm its config", n.Name)
	}
	return nil
}
