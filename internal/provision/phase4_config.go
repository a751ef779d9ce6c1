package provision

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/teleport"
)

// generateConfig is phase 4: a short-lived Teleport join token, the Talos
// PKI and every node's machine configs (all in memory, nodeconfig.go), and
// the credentials stored before any node sees its config, so that nothing is
// lost if the run dies after phase 5 starts. All of it normally ran in the
// background while the pivots wrote Talos to disk; this phase collects it.
func (p *Provisioner) generateConfig(ctx context.Context, r *pipeline.Run) error {
	start := time.Now() // in Sequential mode the work runs inline, right here
	_, err := p.prep.Get(ctx, r)
	p.onPath(time.Since(start))
	return err
}

// prepare is phase 4's work. The token is minted once every install is over,
// when its TTL still covers what is left: the pivot, the reboot and the
// agent's start.
func (p *Provisioner) prepare(ctx context.Context, r *pipeline.Run) (struct{}, error) {
	// A config delivered with the install is needed before the install:
	// the token is minted as soon as the addresses are known, and its
	// renewal covers the longer wait.
	for _, n := range p.nodes {
		if installDelivery(p.cfg) {
			break
		}
		if _, err := n.Installed.Get(ctx); err != nil {
			return struct{}{}, err
		}
	}
	if p.opts.Resume != nil {
		p.dropStaleTokens(ctx, r)
	}
	tok, err := p.mintToken(ctx, r) // token.go: also how it is renewed
	if err != nil {
		return struct{}{}, err
	}
	r.Info("Teleport join token minted", map[string]any{"role": "Kube", "ttl": p.tokenTTL().String(), "token": teleport.Redact(tok.Name)})

	bundle, err := p.bundle.Get(ctx, r)
	if err != nil {
		return struct{}{}, fmt.Errorf("generate Talos secrets: %w", err)
	}
	if err := p.renderPlatform(ctx, r); err != nil {
		return struct{}{}, fmt.Errorf("render the platform layer: %w", err)
	}
	if err := p.renderConfigs(ctx, r, bundle); err != nil {
		return struct{}{}, err
	}
	encoded, err := machineconfig.MarshalSecrets(bundle)
	if err != nil {
		return struct{}{}, fmt.Errorf("encode Talos secrets: %w", err)
	}
	items := map[string][]byte{
		SecretTalosBundle: encoded,
		SecretTalosconfig: p.talosconfig,
	}
	if p.newDeployKey {
		items[SecretFluxDeployKey] = p.deployKey.Private
	}
	if p.host != nil {
		items[SecretStorageSSHKey] = p.host.storageKey.PrivateKey
	}
	return struct{}{}, p.keep(ctx, r, items)
}

func (p *Provisioner) operatorAddress(ctx context.Context, r *pipeline.Run) (netip.Addr, error) {
	if v := p.cfg.Get(config.OperatorIP); v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("operator-ip %q: %w", v, err)
		}
		r.Info("operator IP from settings", map[string]any{"operator_ip": a.String()})
		return a, nil
	}
	a, err := p.ip.Detect(ctx)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("detect this machine's public IPv4 (set operator-ip to skip detection): %w", err)
	}
	r.Info("operator IP detected", map[string]any{"operator_ip": a.String()})
	return a, nil
}
