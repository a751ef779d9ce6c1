// Package platform renders what a cluster runs from its first boot: the CNI
// (Cilium from its official Helm chart, or Talos's own flannel), the Gateway
// API CRDs, Cilium's load-balancer IP pool and L2 announcement policy, and
// the Flux Operator with a FluxInstance syncing the platform repository.
//
// Everything comes out as Talos inline manifests (plus, for the Flux Operator,
// a URL Talos fetches itself), because Talos applies those on its own at
// bootstrap and keeps them applied: nothing here needs the Kubernetes API,
// which is closed to the internet once the cluster is locked down.
//
// How Talos applies them matters for the order of things (Talos v1.12,
// internal/app/machined/pkg/controllers/k8s/manifest_apply.go): all manifests
// are flattened into one list, Namespaces first, then CRDs, then everything
// else in manifest order; each object is created only if it does not exist
// (never updated); an object whose kind the API server does not know yet (a
// NoMatch from discovery) is skipped with an error and the others are still
// created; when any object failed, the controller fails and the controller
// runtime restarts it with exponential backoff (0.5 s, ×1.5, at most 60 s),
// with fresh discovery each time. The Cilium load-balancer pool and L2 policy,
// whose CRDs only Cilium's operator registers once it runs, therefore land on
// a later retry without anything here waiting for them; the same holds for the
// FluxInstance, whose CRD comes with the Flux Operator's install manifest.
package platform

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
)

// CNI names the cluster's pod network.
type CNI string

// The CNIs rawkode-cloud can set up.
const (
	// CNIFlannel is Talos's default: Talos deploys flannel and kube-proxy itself.
	CNIFlannel CNI = "flannel"
	// CNICilium is Cilium from its Helm chart, replacing kube-proxy.
	CNICilium CNI = "cilium"
)

// CNIs lists the valid CNI values, for help texts and validation.
func CNIs() []CNI { return []CNI{CNIFlannel, CNICilium} }

// Names of the inline manifests this package renders.
const (
	ManifestGatewayAPI    = "gateway-api-crds"
	ManifestCilium        = "cilium"
	ManifestLoadBalancer  = "cilium-load-balancer"
	ManifestFluxDeployKey = "flux-deploy-key"
	ManifestFluxInstance  = "flux-instance"
)

// Manifest is one inline manifest: a named multi-document YAML stream.
type Manifest struct {
	Name     string
	Contents string
}

// Input is what the platform layer is rendered from.
type Input struct {
	ClusterName string
	// KubernetesVersion is the cluster's version (with or without "v"); the
	// chart is rendered for it.
	KubernetesVersion string
	CNI               CNI
	// LoadBalancerPool is what Cilium's LB IPAM hands to LoadBalancer
	// services (the gateway's VIP) and announces on the local network. Only
	// with CNICilium; at least one prefix there.
	LoadBalancerPool []netip.Prefix
	// ControlPlaneNodes sizes the Cilium operator (one replica per node, at
	// most two, as its anti-affinity allows one per node).
	ControlPlaneNodes int
	// Flux, when set, installs the Flux Operator and a FluxInstance.
	Flux *FluxInput
}

// Result is the rendered platform layer.
type Result struct {
	// Manifests are the inline manifests, in the order they are listed in
	// the machine config.
	Manifests []Manifest
	// ExtraManifests are URLs Talos downloads and applies itself.
	ExtraManifests []string
	// CNINone says the machine config must set cluster.network.cni.name to
	// none: the CNI comes with the manifests.
	CNINone bool
	// DisableKubeProxy says the machine config must disable kube-proxy.
	DisableKubeProxy bool
}

var clusterNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Validate reports every problem with the input at once.
func (in Input) Validate() error {
	var errs []error

	if !clusterNameRE.MatchString(in.ClusterName) {
		errs = append(errs, fmt.Errorf("cluster name %q is not a DNS label", in.ClusterName))
	}

	if _, err := kubeVersion(in.KubernetesVersion); err != nil {
		errs = append(errs, err)
	}

	switch in.CNI {
	case CNIFlannel:
		if len(in.LoadBalancerPool) > 0 {
			errs = append(errs, errors.New("a load-balancer pool needs cni cilium (flannel has no load balancer)"))
		}
	case CNICilium:
		if len(in.LoadBalancerPool) == 0 {
			errs = append(errs, errors.New("cni cilium needs a load-balancer pool (the gateway VIP at least)"))
		}

		for _, p := range in.LoadBalancerPool {
			if !p.IsValid() || p != p.Masked() {
				errs = append(errs, fmt.Errorf("load-balancer pool entry %s is not a network prefix", p))
			}
		}
	default:
		errs = append(errs, fmt.Errorf("cni %q is not one of flannel, cilium", in.CNI))
	}

	if in.Flux != nil {
		if err := in.Flux.validate(); err != nil {
			errs = append(errs, err)
		}
	}

	return errors.Join(errs...)
}

// Render renders the platform layer. It is pure: the same input gives the
// same output, byte for byte.
func Render(ctx context.Context, in Input) (*Result, error) {
	if err := in.Validate(); err != nil {
		return nil, fmt.Errorf("render platform layer: %w", err)
	}

	res := &Result{}

	if in.CNI == CNICilium {
		res.CNINone, res.DisableKubeProxy = true, true

		gateway, err := GatewayAPICRDs()
		if err != nil {
			return nil, err
		}

		chart, err := RenderCilium(ctx, CiliumInput{
			KubernetesVersion: in.KubernetesVersion,
			OperatorReplicas:  min(max(in.ControlPlaneNodes, 1), 2),
		})
		if err != nil {
			return nil, err
		}

		lb, err := loadBalancerManifest(in.ClusterName, in.LoadBalancerPool)
		if err != nil {
			return nil, err
		}

		res.Manifests = append(res.Manifests,
			Manifest{Name: ManifestGatewayAPI, Contents: gateway},
			Manifest{Name: ManifestCilium, Contents: chart},
			Manifest{Name: ManifestLoadBalancer, Contents: lb},
		)
	}

	if in.Flux != nil {
		key, instance, err := fluxManifests(in.ClusterName, *in.Flux)
		if err != nil {
			return nil, err
		}

		res.ExtraManifests = append(res.ExtraManifests, FluxOperatorInstallURL)
		res.Manifests = append(res.Manifests,
			Manifest{Name: ManifestFluxDeployKey, Contents: key},
			Manifest{Name: ManifestFluxInstance, Contents: instance},
		)
	}

	return res, nil
}
