package provision

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/kube"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/platform"
)

// SecretFluxDeployKey is where a generated Flux deploy key is kept.
const SecretFluxDeployKey = "FLUX_DEPLOY_KEY"

func init() { fileNames[SecretFluxDeployKey] = "flux-deploy-key" }

// fluxConfigured says whether the FluxInstance is wanted.
func fluxConfigured(cfg *config.Config) bool { return cfg.Get(config.FluxGitURL) != "" }

// resolveDeployKey is phase 0's part for Flux: the key comes from the
// settings (flux-deploy-key, which Infisical may fill), else from what an
// earlier run stored for the cluster, else it is generated — and then its
// public half is printed now, so the operator can add it to the repository
// while the hardware is being delivered. A generated key is stored in phase
// 4 with the cluster's other secrets.
func (p *Provisioner) resolveDeployKey(ctx context.Context, r *pipeline.Run) error {
	if !fluxConfigured(p.cfg) || !strings.HasPrefix(p.cfg.Get(config.FluxGitURL), "ssh://") {
		return nil
	}

	raw := p.cfg.Get(config.FluxDeployKey)
	source := "settings"

	if raw == "" && p.store != nil {
		if v, err := p.store.Get(ctx, p.secretsPath(), SecretFluxDeployKey); err == nil && v != "" {
			raw, source = v, "Infisical "+p.secretsPath()
		}
	}

	if raw != "" {
		k, err := platform.ParseDeployKey([]byte(raw))
		if err != nil {
			return fmt.Errorf("flux deploy key from %s: %w", source, err)
		}

		p.deployKey = k
		p.opts.Redactor.Add(string(k.Private))
		r.Info("Flux deploy key from "+source, map[string]any{"fingerprint": k.Fingerprint()})

		return nil
	}

	k, err := platform.GenerateDeployKey("flux@" + p.clusterName())
	if err != nil {
		return err
	}

	p.deployKey, p.newDeployKey = k, true
	p.opts.Redactor.Add(string(k.Private))
	r.Info(DeployKeyInstruction(p.cfg.Get(config.FluxGitURL), k), map[string]any{"public_key": k.Public, "fingerprint": k.Fingerprint()})

	return nil
}

// DeployKeyInstruction says exactly what to do with a new deploy key.
func DeployKeyInstruction(repoURL string, k *platform.DeployKey) string {
	where := "the repository's deploy keys"
	if rest, ok := strings.CutPrefix(repoURL, "ssh://git@github.com/"); ok {
		where = "https://github.com/" + strings.TrimSuffix(rest, ".git") + "/settings/keys (Add deploy key)"
	}

	return fmt.Sprintf("new Flux deploy key: add it as a READ-ONLY deploy key (leave \"Allow write access\" unchecked) at %s, before the cluster comes up, so Flux can sync: %s", where, k.Public)
}

// PlatformInput is what a cluster's platform layer is rendered from: the
// settings, the nodes' addresses (the default load-balancer pool on Elastic
// Metal; a topology with a gateway VIP passes its pool in the setting) and
// the Flux deploy key.
func PlatformInput(cfg *config.Config, nodeIPs []string, key *platform.DeployKey) (platform.Input, error) {
	in := platform.Input{
		ClusterName:       cfg.Get(config.ClusterName),
		KubernetesVersion: cfg.Get(config.KubernetesVersion),
		CNI:               platform.CNI(cfg.Get(config.CNI)),
		ControlPlaneNodes: len(nodeIPs),
	}

	if in.CNI == platform.CNICilium {
		pool, err := config.ParsePool(cfg.Get(config.LoadBalancerPool))
		if err != nil {
			return in, fmt.Errorf("load-balancer-pool: %w", err)
		}

		if len(pool) == 0 && cfg.Get(config.Topology) == config.TopologyProxmox {
			// The VMs' gateway VIP on the internal network, where the
			// HAProxy VM sends *.apps.<domain>.
			vip := ProxmoxLayout().GatewayVIP
			pool = append(pool, netip.PrefixFrom(vip, vip.BitLen()))
		}
		if len(pool) == 0 {
			// On Elastic Metal the only address is the server's own: the
			// gateway answers there (Cilium handles a service on the node
			// IP in eBPF), until a failover IP is added to the pool.
			for _, ip := range nodeIPs {
				if a, err := netip.ParseAddr(ip); err == nil {
					pool = append(pool, netip.PrefixFrom(a, a.BitLen()))
				}
			}
		}

		in.LoadBalancerPool = pool
	}

	if fluxConfigured(cfg) {
		in.Flux = &platform.FluxInput{
			URL:        cfg.Get(config.FluxGitURL),
			Branch:     cfg.Get(config.FluxGitBranch),
			Path:       cfg.Get(config.FluxGitPath),
			KnownHosts: cfg.Get(config.FluxGitKnownHosts),
			DeployKey:  key,
		}
	}

	return in, nil
}

// RenderPlatformLayer renders the platform layer into what the machine
// configs carry.
func RenderPlatformLayer(ctx context.Context, in platform.Input) (*machineconfig.PlatformLayer, error) {
	res, err := platform.Render(ctx, in)
	if err != nil {
		return nil, err
	}

	layer := &machineconfig.PlatformLayer{ExtraManifests: res.ExtraManifests, CNINone: res.CNINone, DisableKubeProxy: res.DisableKubeProxy}
	for _, m := range res.Manifests {
		layer.Manifests = append(layer.Manifests, machineconfig.Manifest{Name: m.Name, Contents: m.Contents})
	}

	return layer, nil
}

// renderPlatform renders the platform layer once for all nodes.
func (p *Provisioner) renderPlatform(ctx context.Context, r *pipeline.Run) error {
	var ips []string
	for _, n := range p.nodes {
		ips = append(ips, n.IP())
	}

	in, err := PlatformInput(p.cfg, ips, p.deployKey)
	if err != nil {
		return err
	}

	if p.platform, err = RenderPlatformLayer(ctx, in); err != nil {
		return err
	}

	fields := map[string]any{"cni": string(in.CNI)}
	if p.host != nil {
		if err := p.addStorage(ctx, fields); err != nil {
			return err
		}
	}
	if in.CNI == platform.CNICilium {
		fields["cilium"] = platform.CiliumVersion
		fields["gateway_api"] = platform.GatewayAPIVersion
		fields["load_balancer_pool"] = fmt.Sprint(in.LoadBalancerPool)
	}

	if in.Flux != nil {
		fields["flux_operator"] = platform.FluxOperatorVersion
		fields["flux_sync"] = fmt.Sprintf("%s %s %s", in.Flux.URL, "refs/heads/"+p.cfg.Get(config.FluxGitBranch), in.Flux.SyncPath(p.clusterName()))
	}

	r.Info("platform layer rendered into the inline manifests", fields)

	return nil
}

// verifyNodes waits, through the Kubernetes API the operator can still
// reach, until every node of the cluster, control planes and workers, has
// registered under its name and is Ready: a kubelet that never joined leaves
// a node that Talos calls healthy and the cluster does not have. The error
// names the nodes missing.
func (p *Provisioner) verifyNodes(ctx context.Context, r *pipeline.Run) error {
	var names []string
	for _, n := range p.nodes {
		names = append(names, n.Name)
	}

	return p.waitKubernetes(ctx, r, "Kubernetes: every node registered and Ready ("+strings.Join(names, ", ")+")",
		"Kubernetes node verification failed", kube.Expect{NodeNames: names})
}

// verifyKubernetes waits until the CNI and CoreDNS run and, with Flux, the
// FluxInstance is Ready (and, with Cilium, its load-balancer objects exist).
func (p *Provisioner) verifyKubernetes(ctx context.Context, r *pipeline.Run) error {
	exp := kube.Expect{CNI: platform.CNI(p.cfg.Get(config.CNI)), Flux: fluxConfigured(p.cfg)}
	if exp.CNI == platform.CNICilium {
		exp.LoadBalancerPool, exp.L2Policy = platform.LoadBalancerNames(p.clusterName())
	}

	return p.waitKubernetes(ctx, r, "Kubernetes: the CNI and CoreDNS running"+map[bool]string{true: ", the FluxInstance Ready", false: ""}[exp.Flux],
		"Kubernetes verification failed", exp)
}

// waitKubernetes waits until exp holds in the cluster's API, reporting item
// by item.
func (p *Provisioner) waitKubernetes(ctx context.Context, r *pipeline.Run, title, failure string, exp kube.Expect) error {
	if _, err := p.kubeconfig.Get(ctx, r); err != nil {
		return err
	}

	c, err := p.opts.Factory.Kube(p.kubeconfigData, p.bootstrapNode().IP())
	if err != nil {
		return err
	}

	w := r.Wait(title, p.timeout(config.KubernetesTimeout), p.cfg.Duration(config.KubernetesPoll))
	wctx, cancel := w.Context(ctx)
	defer cancel()

	rep, err := c.WaitReady(wctx, exp, w.Options(), nil)
	for _, item := range rep {
		r.Info("kubernetes: "+item.Name, map[string]any{"ok": item.OK, "detail": item.Detail})
	}

	if err != nil {
		var failing []string
		for _, item := range rep.Failing() {
			failing = append(failing, item.Name+": "+item.Detail)
		}

		if len(failing) == 0 {
			return fmt.Errorf("%s: %w", failure, err)
		}

		return fmt.Errorf("%s: %s", failure, strings.Join(failing, "; "))
	}

	w.Done()

	return nil
}

// platformProblems checks what the platform settings need of each other,
// before anything is created.
func platformProblems(cfg *config.Config) config.Problems {
	var probs config.Problems

	cni := cfg.Get(config.CNI)
	if cfg.Get(config.LoadBalancerPool) != "" && cni != config.CNICilium {
		probs = append(probs, cfg.ProblemFor(config.LoadBalancerPool, "needs cni cilium: flannel has no load balancer"))
	}

	url := cfg.Get(config.FluxGitURL)
	if url == "" {
		for _, name := range []string{config.FluxDeployKey, config.FluxGitKnownHosts, config.FluxGitPath} {
			if cfg.Get(name) != "" {
				probs = append(probs, cfg.ProblemFor(name, "has no effect without flux-git-url"))
			}
		}

		return probs
	}

	if strings.HasPrefix(url, "ssh://") && cfg.Get(config.FluxGitKnownHosts) == "" {
		if host := (platform.FluxInput{URL: url}).SSHHost(); host != "github.com" {
			probs = append(probs, cfg.ProblemFor(config.FluxGitKnownHosts, "is required for the SSH host "+host+" (only github.com's keys are built in)"))
		}
	}

	return probs
}
