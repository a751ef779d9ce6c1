package provision

import (
	"context"
	"strings"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

// Services that must be Running and Healthy on a control plane before the
// cluster counts as up; WorkerServices on a worker (no etcd, no trustd).
var (
	Services       = []string{"etcd", "kubelet", "apid", "trustd"}
	WorkerServices = []string{"kubelet", "apid"}
)

// bootstrap is phase 5: apply every node's config over the maintenance API
// and wait for its reboot and mTLS (all nodes side by side), bootstrap etcd
// exactly once on the bootstrap node, wait for every node's services, then
// keep the kubeconfig with the other credentials.
func (p *Provisioner) bootstrap(ctx context.Context, r *pipeline.Run) error {
	if !installDelivery(p.cfg) || p.opts.Resume != nil {
		// The configs handed over now carry the join token: it must still
		// cover the reboot, etcd and the agent's start (token.go).
		if err := p.freshTokenBeforeHanding(ctx, r, p.host != nil); err != nil {
			return err
		}
	}
	if err := eachNode(p.nodes, func(n *Node) error { return p.applyConfig(ctx, r, n) }); err != nil {
		return err
	}
	if err := p.bootstrapEtcd(ctx, r, p.bootstrapNode()); err != nil {
		return err
	}
	if err := eachNode(p.nodes, func(n *Node) error { return p.waitServices(ctx, r, n) }); err != nil {
		return err
	}
	if installDelivery(p.cfg) && p.host == nil {
		if err := eachNode(p.nodes, func(n *Node) error { return p.removeDeliveryTraces(ctx, r, n) }); err != nil {
			return err
		}
	}
	if p.host != nil {
		if err := p.host.removeTalosSeeds(ctx, r); err != nil {
			return err
		}
	}
	// Nothing in phase 6 needs the kubeconfig until the lockdown: fetch and
	// store it alongside the Teleport wait.
	p.ahead(r, p.kubeconfig)
	return nil
}

// applyConfig hands node n its config and waits until it answers over mTLS.
func (p *Provisioner) applyConfig(ctx context.Context, r *pipeline.Run, n *Node) error {
	ip := n.IP()
	if p.opts.Resume != nil {
		// The node runs its config already: hand it the new one (a fresh
		// join token) over mTLS, without a reboot.
		if _, err := p.talos.ApplySecure(ctx, ip, p.talosconfig, n.config); err != nil {
			return err
		}
		r.Info("machine config re-applied over mTLS (resumed run)", map[string]any{"ip": ip})
		return nil
	}
	if installDelivery(p.cfg) || p.host != nil {
		// It booted with its config and answered over mTLS in phase 2.
		return nil
	}
	if err := p.talos.ApplyInsecure(ctx, ip, n.config); err != nil {
		return err // the adapter names the operation and the node
	}
	r.Info("machine config applied; node is rebooting into its configuration", map[string]any{"ip": ip})

	w := r.Wait("Talos API over mTLS on "+ip, p.timeout(config.TalosMTLSTimeout), p.cfg.Duration(config.TalosMTLSInterval))
	wctx, cancel := w.Context(ctx)
	defer cancel()
	gctx, opts, ipChanged := p.guardIP(wctx, w.Options())
	err := p.talos.WaitMTLS(gctx, ip, p.talosconfig, opts)
	if changed := ipChanged(); changed != nil {
		return changed // not the node's fault: say so, at once
	}
	if err != nil {
		if changed := p.operatorIPChanged(ctx); changed != nil {
			return changed
		}
		return err // the adapter names the operation and the node
	}
	w.Done()
	return nil
}

// bootstrapEtcd bootstraps etcd on n: once per cluster, never on a joiner
// (the other control planes join the member it starts by themselves).
func (p *Provisioner) bootstrapEtcd(ctx context.Context, r *pipeline.Run, n *Node) error {
	if p.opts.Rebuild != nil && p.opts.Rebuild.Snapshot != nil {
		return p.recoverEtcd(ctx, r, n)
	}
	w := r.Wait("etcd bootstrap", p.timeout(config.TalosMTLSTimeout), p.cfg.Duration(config.TalosMTLSInterval))
	wctx, cancel := w.Context(ctx)
	defer cancel()
	if err := p.talos.Bootstrap(wctx, n.IP(), p.talosconfig, w.Options()); err != nil {
		return err // the adapter names the operation and the node
	}
	w.Done()
	return nil
}

// waitServices waits until node n's services are healthy: on a joining
// control plane, etcd is healthy only once it became a member.
func (p *Provisioner) waitServices(ctx context.Context, r *pipeline.Run, n *Node) error {
	services := Services
	if n.Role == Worker {
		services = WorkerServices
	}
	w := r.Wait(strings.Join(services, ", ")+" healthy on "+n.IP(), p.timeout(config.ServicesTimeout), p.cfg.Duration(config.ServicesInterval))
	wctx, cancel := w.Context(ctx)
	defer cancel()
	if err := p.talos.WaitServices(wctx, n.IP(), p.talosconfig, services, w.Options()); err != nil {
		return err // the adapter names the operation and the node
	}
	w.Done()
	return nil
}

// fetchKubeconfig is the kubeconfig work: it comes from the bootstrap node
// and is kept with the other credentials.
func (p *Provisioner) fetchKubeconfig(ctx context.Context, r *pipeline.Run) (struct{}, error) {
	kc, err := p.talos.Kubeconfig(ctx, p.bootstrapNode().IP(), p.talosconfig)
	if err != nil {
		return struct{}{}, err // the adapter names the operation and the node
	}
	p.kubeconfigData = kc
	return struct{}{}, p.keep(ctx, r, map[string][]byte{SecretKubeconfig: kc})
}
