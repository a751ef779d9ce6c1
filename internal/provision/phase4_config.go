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
// PKI and machine configs (all in memory), and the credentials stored before
// the node ever sees its config, so that nothing is lost if the run dies
// after phase 5 starts. All of it normally ran in the background while the
// pivot wrote Talos to disk; this phase collects it.
func (p *Provisioner) generateConfig(ctx context.Context, r *pipeline.Run) error {
	start := time.Now() // before startPrep: in Sequential mode it runs inline
	if p.prepTask == nil {
		p.startPrep(r)
	}
	err := p.prepTask.Wait(ctx)
	p.onPath(time.Since(start))
	return err
}

// startPrep begins phase 4's work. The token is minted now, when the TTL
// still covers what is left: the pivot, the reboot and the agent's start.
func (p *Provisioner) startPrep(r *pipeline.Run) {
	p.prepTask = p.spawn(r, func(ctx context.Context) error { return p.prepare(ctx, r) })
}

func (p *Provisioner) prepare(ctx context.Context, r *pipeline.Run) error {
	ttl := p.cfg.Duration(config.TeleportTokenTTL)
	tok, err := p.tp.CreateKubeToken(ctx, p.clusterName(), ttl)
	if err != nil {
		return fmt.Errorf("create Teleport join token: %w", err)
	}
	p.token = tok
	p.opts.Redactor.Add(tok.Name)
	expires := tok.Expires.UTC().Format("15:04:05Z")
	r.Undo(pipeline.UndoStep{
		Resource: fmt.Sprintf("Teleport join token %s (expires %s)", teleport.Redact(tok.Name), expires),
		Command:  fmt.Sprintf("tctl tokens rm <token %s> (it expires by itself at %s)", teleport.Redact(tok.Name), expires),
		Do:       func(ctx context.Context) error { return p.tp.DeleteToken(ctx, tok.Name) },
	})
	r.Info("Teleport join token minted", map[string]any{"role": "Kube", "ttl": ttl.String(), "token": teleport.Redact(tok.Name)})

	if p.bundleTask == nil {
		p.bundleTask = p.spawn(r, p.generateSecrets)
	}
	if err := p.bundleTask.Wait(ctx); err != nil {
		return fmt.Errorf("generate Talos secrets: %w", err)
	}
	p.artifacts, err = machineconfig.Generate(p.machineInput())
	if err != nil {
		return fmt.Errorf("generate Talos machine config: %w", err)
	}
	fw, err := machineconfig.FirewallRules(p.artifacts.ControlPlane)
	if err != nil {
		return fmt.Errorf("read back firewall rules: %w", err)
	}
	for _, rule := range fw.Rules {
		if rule.Operator() {
			r.Info("temporary firewall opening", map[string]any{"rule": rule.String()})
		}
	}
	bundle, err := machineconfig.MarshalSecrets(p.bundle)
	if err != nil {
		return fmt.Errorf("encode Talos secrets: %w", err)
	}
	return p.keep(ctx, r, map[string][]byte{
		SecretTalosBundle: bundle,
		SecretTalosconfig: p.artifacts.Talosconfig,
	})
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

func (p *Provisioner) machineInput() machineconfig.Input {
	endpoint := p.publicIP
	if p.cfg.IsSet(config.CloudflareDNSName) {
		endpoint = p.cfg.Get(config.CloudflareDNSName)
	}
	pub, _ := netip.ParseAddr(p.publicIP)
	return machineconfig.Input{
		ClusterName:           p.clusterName(),
		Endpoint:              endpoint,
		PublicIP:              pub,
		DNSName:               p.cfg.Get(config.CloudflareDNSName),
		KubernetesVersion:     p.cfg.Get(config.KubernetesVersion),
		TalosVersion:          p.cfg.Get(config.TalosVersion),
		SchematicID:           p.cfg.Get(config.TalosSchematicID),
		InstallDisk:           p.cfg.Get(config.TalosInstallDisk),
		OperatorIP:            p.operatorIP,
		TeleportProxy:         p.cfg.Get(config.TeleportProxy),
		TeleportJoinToken:     p.token.Name,
		TeleportAgentVersion:  p.agentVersion,
		InfisicalClientID:     p.cfg.Get(config.InfisicalClientID),
		InfisicalClientSecret: p.cfg.Get(config.InfisicalClientSecret),
		Secrets:               p.bundle,
	}
}
