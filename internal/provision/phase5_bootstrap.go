package provision

import (
	"context"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

// Services that must be Running and Healthy before the cluster counts as up.
var Services = []string{"etcd", "kubelet", "apid", "trustd"}

// bootstrap is phase 5: apply the config over the maintenance API, wait for
// the reboot and mTLS, bootstrap etcd exactly once, wait for the services,
// then keep the kubeconfig with the other credentials.
func (p *Provisioner) bootstrap(ctx context.Context, r *pipeline.Run) error {
	ip, tc := p.publicIP, p.artifacts.Talosconfig
	if err := p.talos.ApplyInsecure(ctx, ip, p.artifacts.ControlPlane); err != nil {
		return err // the adapter names the operation and the node
	}
	r.Info("machine config applied; node is rebooting into its configuration", map[string]any{"ip": ip})

	w := r.Wait("Talos API over mTLS on "+ip, p.timeout(config.TalosMTLSTimeout), p.cfg.Duration(config.TalosMTLSInterval))
	wctx, cancel := w.Context(ctx)
	err := p.talos.WaitMTLS(wctx, ip, tc, w.Options())
	cancel()
	if err != nil {
		return err // the adapter names the operation and the node
	}
	w.Done()

	w = r.Wait("etcd bootstrap", p.timeout(config.TalosMTLSTimeout), p.cfg.Duration(config.TalosMTLSInterval))
	wctx, cancel = w.Context(ctx)
	err = p.talos.Bootstrap(wctx, ip, tc, w.Options())
	cancel()
	if err != nil {
		return err // the adapter names the operation and the node
	}
	w.Done()

	w = r.Wait("etcd, kubelet, apid, trustd healthy", p.timeout(config.ServicesTimeout), p.cfg.Duration(config.ServicesInterval))
	wctx, cancel = w.Context(ctx)
	err = p.talos.WaitServices(wctx, ip, tc, Services, w.Options())
	cancel()
	if err != nil {
		return err // the adapter names the operation and the node
	}
	w.Done()

	// Nothing in phase 6 needs the kubeconfig: fetch and store it alongside
	// the Teleport wait; phase 6 joins it before declaring success.
	p.kubeTask = p.spawn(r, func(ctx context.Context) error {
		kc, err := p.talos.Kubeconfig(ctx, ip, tc)
		if err != nil {
			return err // the adapter names the operation and the node
		}
		return p.keep(ctx, r, map[string][]byte{SecretKubeconfig: kc})
	})
	return nil
}
