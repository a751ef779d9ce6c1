package provision

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

// renderConfigs renders every node's Talos configs from one secrets bundle:
// the config applied in phase 5 and the lockdown config applied in phase 6,
// plus the cluster's talosconfig. This is the one place where what a node
// receives is decided.
func (p *Provisioner) renderConfigs(ctx context.Context, r *pipeline.Run, bundle *secrets.Bundle) error {
	if p.host != nil {
		return p.host.vmConfigs(bundle)
	}
	if err := p.renderNodeConfigs(ctx, bundle); err != nil {
		return err
	}
	for _, n := range p.nodes {
		fw, err := machineconfig.FirewallRules(n.config)
		if err != nil {
			return fmt.Errorf("read back firewall rules: %w", err)
		}
		for _, rule := range fw.Rules {
			if rule.Operator() {
				r.Info("temporary firewall opening", map[string]any{"rule": rule.String(), "node": n.Name})
			}
		}
	}
	return nil
}

// renderNodeConfigs renders every node's configs with the run's current
// join token; a renewed token renders them again (token.go). The
// talosconfig comes from the bundle alone, so it is kept from the first
// rendering: later work reads it meanwhile.
func (p *Provisioner) renderNodeConfigs(ctx context.Context, bundle *secrets.Bundle) error {
	if p.host != nil {
		return p.host.vmConfigs(bundle)
	}
	all, err := addresses(ctx, p.nodes)
	if err != nil {
		return err
	}
	cps, err := addresses(ctx, p.controlPlanes())
	if err != nil {
		return err
	}
	for _, n := range p.nodes {
		res, err := machineconfig.Generate(p.machineInput(n, bundle, parseAddrs(cps), parseAddrs(all)))
		if err != nil {
			return fmt.Errorf("generate Talos machine config: %w", err)
		}
		n.config, n.lockdown = res.ControlPlane, res.Lockdown
		if p.talosconfig == nil {
			p.talosconfig = res.Talosconfig // the same for every node
		}
	}
	return nil
}

func parseAddrs(ips []string) []netip.Addr {
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// machineInput is what node n's configs are made of. The cluster endpoint
// is the DNS name (an A record per control plane) when Cloudflare is
// configured, else the first control plane's address.
func (p *Provisioner) machineInput(n *Node, bundle *secrets.Bundle, controlPlanes, nodes []netip.Addr) machineconfig.Input {
	endpoint := p.bootstrapNode().IP()
	if p.cfg.IsSet(config.CloudflareDNSName) {
		endpoint = p.cfg.Get(config.CloudflareDNSName)
	}
	pub, _ := netip.ParseAddr(n.IP())
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
		TeleportProxy:         p.kubeAgentProxy(),
		TeleportJoinToken:     p.currentToken().Name,
		TeleportAgentVersion:  p.agentVersion,
		TeleportAgentLabels:   p.agentLabels(),
		InfisicalClientID:     p.cfg.Get(config.InfisicalClientID),
		InfisicalClientSecret: p.cfg.Get(config.InfisicalClientSecret),
		Secrets:               bundle,
		Worker:                n.Role == Worker,
		Hostname:              n.Name,
		ControlPlaneIPs:       controlPlanes,
		NodeIPs:               nodes,
		HasWorkers:            len(p.nodes) > len(p.controlPlanes()),
		Platform:              p.platform,
	}
}
