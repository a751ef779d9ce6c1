package democraticcsi

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"

	chartpkg "github.com/rawkode/rawkode-cloud/third_party/democratic-csi"
)

// Render returns the storage layer as one manifest stream, namespace first:
// the real chart rendered as `helm template` would (Helm Go SDK, the
// chart's own templates), for the cluster's Kubernetes version. It holds
// the driver's SSH private key: treat it as a secret.
func Render(ctx context.Context, in Input, kubernetesVersion string) (string, error) {
	values, err := Values(in)
	if err != nil {
		return "", err
	}
	kv, err := chartutil.ParseKubeVersion("v" + strings.TrimPrefix(kubernetesVersion, "v"))
	if err != nil {
		return "", fmt.Errorf("kubernetes version %q: %w", kubernetesVersion, err)
	}
	c, err := loader.LoadArchive(bytes.NewReader(chartpkg.ChartArchive))
	if err != nil {
		return "", fmt.Errorf("load the democratic-csi %s chart: %w", chartpkg.ChartVersion, err)
	}
	install := action.NewInstall(&action.Configuration{Releases: storage.Init(driver.NewMemory()), Log: func(string, ...any) {}})
	install.DryRun, install.ClientOnly, install.Replace = true, true, true
	install.DisableOpenAPIValidation = true
	install.ReleaseName, install.Namespace = ReleaseName, Namespace
	install.KubeVersion = kv
	rel, err := install.RunWithContext(ctx, c, values)
	if err != nil {
		// Helm's errors quote template positions, never values.
		return "", fmt.Errorf("render the democratic-csi %s chart: %w", chartpkg.ChartVersion, err)
	}
	if len(rel.Hooks) > 0 {
		return "", fmt.Errorf("render the democratic-csi %s chart: %d hook(s) rendered (first %s), which inline manifests cannot express",
			chartpkg.ChartVersion, len(rel.Hooks), rel.Hooks[0].Path)
	}
	return NamespaceManifest() + "---\n" + strings.TrimLeft(rel.Manifest, "-\n"), nil
}
