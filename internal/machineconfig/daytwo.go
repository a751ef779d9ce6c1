package machineconfig

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	coreconfig "github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/container"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/types/network"
	"github.com/siderolabs/talos/pkg/machinery/config/types/v1alpha1"
)

// Day-two changes start from the config a node runs (read back over the
// Talos API) and change one thing in it, so that they never undo another:
// the operator rules of a break-glass opening, or image tags of an upgrade.

// WithOperatorRules returns cfg with the operator rules set to admit
// operator only: the Talos API, and on a control plane the Kubernetes API,
// from its /32. Rules for any earlier operator address are replaced.
func WithOperatorRules(cfg []byte, operator netip.Addr) ([]byte, error) {
	if !operator.IsValid() {
		return nil, errors.New("open the operator rules: no operator address")
	}
	provider, docs, err := withoutOperatorDocs(cfg)
	if err != nil {
		return nil, err
	}
	operator = operator.Unmap()
	only := netip.PrefixFrom(operator, operator.BitLen())
	docs = append(docs, tcpRule(RuleOperatorTalosAPI, TalosAPIPort, only))
	if provider.Machine() == nil || provider.Machine().Type().IsControlPlane() {
		docs = append(docs, tcpRule(RuleOperatorKubeAPI, KubernetesAPIPort, only))
	}
	return encodeDocs(docs)
}

// WithoutOperatorRules returns cfg without the operator rules: the
// lockdown of a node that had been opened.
func WithoutOperatorRules(cfg []byte) ([]byte, error) {
	_, docs, err := withoutOperatorDocs(cfg)
	if err != nil {
		return nil, err
	}
	return encodeDocs(docs)
}

func withoutOperatorDocs(cfg []byte) (configProvider, []config.Document, error) {
	provider, err := configloader.NewFromBytes(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("change the operator rules: %w", errUnreadableConfig)
	}
	var docs []config.Document
	for _, doc := range provider.Documents() {
		if named, ok := doc.(config.NamedDocument); ok && (named.Name() == RuleOperatorTalosAPI || named.Name() == RuleOperatorKubeAPI) {
			if _, isRule := doc.(*network.RuleConfigV1Alpha1); isRule {
				continue
			}
		}
		docs = append(docs, doc)
	}
	return provider, docs, nil
}

func encodeDocs(docs []config.Document) ([]byte, error) {
	c, err := container.New(docs...)
	if err != nil {
		return nil, err
	}
	return c.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
}

// InstallImage is the installer image a config names (machine.install.image).
func InstallImage(cfg []byte) (string, error) {
	provider, err := configloader.NewFromBytes(cfg)
	if err != nil {
		return "", fmt.Errorf("read the install image: %w", errUnreadableConfig)
	}
	if provider.Machine() == nil || provider.Machine().Install().Image() == "" {
		return "", errors.New("the machine config names no install image (machine.install.image)")
	}
	return provider.Machine().Install().Image(), nil
}

// WithTag replaces the tag of an image reference ("repo/name:tag", or
// "repo/name" without one); a digest-pinned reference is refused.
func WithTag(image, tag string) (string, error) {
	if strings.Contains(image, "@") {
		return "", fmt.Errorf("image %s is pinned by digest: cannot move it to %s", image, tag)
	}
	name := image
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		name = image[:i]
	}
	return name + ":" + tag, nil
}

// WithKubernetesVersion returns cfg with the Kubernetes images moved to
// version: the kubelet (every node) and, where the config names them, the
// API server, controller manager, scheduler and kube-proxy (control
// planes). This is what talosctl upgrade-k8s changes in each node's config;
// Talos restarts the kubelet and re-renders the static pods on a re-apply,
// without a reboot.
func WithKubernetesVersion(cfg []byte, version string) ([]byte, error) {
	provider, err := configloader.NewFromBytes(cfg)
	if err != nil {
		return nil, fmt.Errorf("change the Kubernetes version: %w", errUnreadableConfig)
	}
	var perr error
	retag := func(img *string) {
		if *img == "" || perr != nil {
			return
		}
		*img, perr = WithTag(*img, version)
	}
	patched, err := provider.PatchV1Alpha1(func(c *v1alpha1.Config) error {
		if m := c.MachineConfig; m != nil && m.MachineKubelet != nil {
			retag(&m.MachineKubelet.KubeletImage)
		}
		if cl := c.ClusterConfig; cl != nil {
			if cl.APIServerConfig != nil {
				retag(&cl.APIServerConfig.ContainerImage)
			}
			if cl.ControllerManagerConfig != nil {
				retag(&cl.ControllerManagerConfig.ContainerImage)
			}
			if cl.SchedulerConfig != nil {
				retag(&cl.SchedulerConfig.ContainerImage)
			}
			if cl.ProxyConfig != nil {
				retag(&cl.ProxyConfig.ContainerImage)
			}
		}
		return perr
	})
	if err != nil {
		return nil, fmt.Errorf("change the Kubernetes version: %w", err)
	}
	return patched.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
}

// KubeletVersion is the tag of the kubelet image a config names ("" when
// none): the Kubernetes version the node runs.
func KubeletVersion(cfg []byte) string {
	provider, err := configloader.NewFromBytes(cfg)
	if err != nil || provider.Machine() == nil {
		return ""
	}
	img := provider.Machine().Kubelet().Image()
	if i := strings.LastIndex(img, ":"); i > strings.LastIndex(img, "/") {
		return img[i+1:]
	}
	return ""
}

// configProvider is what configloader returns.
type configProvider = coreconfig.Provider
