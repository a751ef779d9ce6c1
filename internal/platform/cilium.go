package platform

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"

	ciliumchart "github.com/rawkode/rawkode-cloud/third_party/cilium"
)

// Facts of the Cilium deployment other packages (verification, the
// emulator) rely on.
const (
	CiliumVersion     = ciliumchart.ChartVersion
	CiliumNamespace   = "kube-system"
	CiliumReleaseName = "cilium"
	// CiliumDaemonSet is the agent: the CNI itself.
	CiliumDaemonSet = "cilium"
	// CiliumOperator registers Cilium's CRDs and runs LB IPAM and the
	// Gateway API controller.
	CiliumOperator = "cilium-operator"
	// KubePrismPort is where Talos's KubePrism load balancer for the API
	// server listens on every node: the agent reaches the API server without
	// kube-proxy (which Cilium replaces) and without depending on one node.
	KubePrismPort = 7445
)

// CiliumInput is what the chart is rendered with.
type CiliumInput struct {
	KubernetesVersion string
	// OperatorReplicas defaults to 1.
	OperatorReplicas int
}

// CiliumValues are the chart values: those Talos's Cilium guide requires
// (IPAM from Kubernetes, kube-proxy replacement through KubePrism, Talos's
// own cgroup v2 mount, no SYS_MODULE since Talos forbids loading kernel
// modules from workloads) and those the platform needs (L2 announcements,
// external IPs, Gateway API).
func CiliumValues(in CiliumInput) map[string]any {
	replicas := in.OperatorReplicas
	if replicas < 1 {
		replicas = 1
	}

	return map[string]any{
		"ipam":                 map[string]any{"mode": "kubernetes"},
		"kubeProxyReplacement": true,
		"k8sServiceHost":       "localhost",
		"k8sServicePort":       KubePrismPort,
		"securityContext": map[string]any{
			"capabilities": map[string]any{
				"ciliumAgent": []any{
					"CHOWN", "KILL", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "SYS_ADMIN",
					"SYS_RESOURCE", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID",
				},
				"cleanCiliumState": []any{"NET_ADMIN", "SYS_ADMIN", "SYS_RESOURCE"},
			},
		},
		"cgroup": map[string]any{
			"autoMount": map[string]any{"enabled": false},
			"hostRoot":  "/sys/fs/cgroup",
		},
		"l2announcements": map[string]any{"enabled": true},
		// L2 announcements hold one lease per announced service; Cilium's
		// documentation asks for a higher client rate limit with them.
		"k8sClientRateLimit": map[string]any{"qps": 20, "burst": 40},
		"externalIPs":        map[string]any{"enabled": true},
		"gatewayAPI": map[string]any{
			"enabled":           true,
			"enableAlpn":        true,
			"enableAppProtocol": true,
			// The CRDs are applied with the chart, so the class is created
			// unconditionally rather than detected ("auto").
			"gatewayClass": map[string]any{"create": "true"},
		},
		"operator": map[string]any{"replicas": replicas},
		// The default ("helm") generates Hubble's CA and keys at render
		// time: they would sit in the machine config and change on every
		// render. The cron job generates them inside the cluster instead.
		"hubble": map[string]any{
			"tls": map[string]any{"auto": map[string]any{"method": "cronJob"}},
		},
	}
}

// loadCiliumChart loads the embedded, unmodified upstream chart archive.
func loadCiliumChart() (*chart.Chart, error) {
	c, err := loader.LoadArchive(bytes.NewReader(ciliumchart.ChartArchive))
	if err != nil {
		return nil, fmt.Errorf("load the Cilium %s chart: %w", ciliumchart.ChartVersion, err)
	}

	return c, nil
}

// RenderCilium renders the Cilium chart as `helm template` would, with the
// Helm Go SDK: the chart's values schema is enforced and the manifests come
// out in Helm's install order.
func RenderCilium(ctx context.Context, in CiliumInput) (string, error) {
	kv, err := kubeVersion(in.KubernetesVersion)
	if err != nil {
		return "", err
	}

	c, err := loadCiliumChart()
	if err != nil {
		return "", err
	}

	cfg := &action.Configuration{
		Releases: storage.Init(driver.NewMemory()),
		Log:      func(string, ...any) {},
	}

	install := action.NewInstall(cfg)
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.IncludeCRDs = true
	install.DisableOpenAPIValidation = true
	install.ReleaseName = CiliumReleaseName
	install.Namespace = CiliumNamespace
	install.KubeVersion = kv

	rel, err := install.RunWithContext(ctx, c, CiliumValues(in))
	if err != nil {
		return "", fmt.Errorf("render the Cilium %s chart: %w", ciliumchart.ChartVersion, err)
	}

	if len(rel.Hooks) > 0 {
		// Talos has no notion of hooks: it would apply them as ordinary
		// objects, at the wrong time.
		return "", fmt.Errorf("render the Cilium %s chart: %d hook(s) rendered (first %s), which inline manifests cannot express",
			ciliumchart.ChartVersion, len(rel.Hooks), rel.Hooks[0].Path)
	}

	return strings.TrimLeft(rel.Manifest, "-\n"), nil
}

// kubeVersion parses "1.35.1" or "v1.35.1" for Helm's capabilities.
func kubeVersion(v string) (*chartutil.KubeVersion, error) {
	if v == "" {
		return nil, fmt.Errorf("kubernetes version is empty")
	}

	kv, err := chartutil.ParseKubeVersion("v" + strings.TrimPrefix(v, "v"))
	if err != nil {
		return nil, fmt.Errorf("kubernetes version %q: %w", v, err)
	}

	return kv, nil
}
