package platform_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/golden"
	"github.com/rawkode/rawkode-cloud/internal/platform"
)

func testKey(t *testing.T) *platform.DeployKey {
	t.Helper()

	raw, err := os.ReadFile("testdata/deploy-key")
	if err != nil {
		t.Fatal(err)
	}

	k, err := platform.ParseDeployKey(raw)
	if err != nil {
		t.Fatal(err)
	}

	return k
}

func ciliumInput(t *testing.T) platform.Input {
	t.Helper()

	return platform.Input{
		ClusterName:       "demo",
		KubernetesVersion: "1.35.1",
		CNI:               platform.CNICilium,
		LoadBalancerPool:  []netip.Prefix{netip.MustParsePrefix("10.10.0.30/32")},
		ControlPlaneNodes: 1,
		Flux: &platform.FluxInput{
			URL:       "ssh://git@github.com/example/platform.git",
			DeployKey: testKey(t),
		},
	}
}

// The rendered manifests are what a user reads with plan --render: keep
// them under golden files, one per manifest.
func TestRenderGolden(t *testing.T) {
	t.Parallel()

	res, err := platform.Render(context.Background(), ciliumInput(t))
	if err != nil {
		t.Fatal(err)
	}

	if !res.CNINone || !res.DisableKubeProxy {
		t.Errorf("cilium must come with cni none and kube-proxy disabled: %+v", res)
	}

	if len(res.ExtraManifests) != 1 || res.ExtraManifests[0] != platform.FluxOperatorInstallURL {
		t.Errorf("extra manifests = %v, want the Flux Operator's release manifest only", res.ExtraManifests)
	}

	var names []string

	for _, m := range res.Manifests {
		names = append(names, m.Name)

		if m.Name == platform.ManifestGatewayAPI {
			continue // unmodified upstream files, checked by TestGatewayAPICRDs
		}

		golden.Compare(t, filepath.Join("testdata", m.Name+".yaml"), []byte(m.Contents))
	}

	want := []string{platform.ManifestGatewayAPI, platform.ManifestCilium, platform.ManifestLoadBalancer,
		platform.ManifestFluxDeployKey, platform.ManifestFluxInstance}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("manifests = %v, want %v", names, want)
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	t.Parallel()

	in := ciliumInput(t)

	a, err := platform.Render(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}

	b, err := platform.Render(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}

	for i := range a.Manifests {
		if a.Manifests[i].Contents != b.Manifests[i].Contents {
			t.Errorf("manifest %s differs between two renders of the same input", a.Manifests[i].Name)
		}
	}
}

func TestFlannelRendersNothing(t *testing.T) {
	t.Parallel()

	res, err := platform.Render(context.Background(), platform.Input{ClusterName: "demo", KubernetesVersion: "1.35.1", CNI: platform.CNIFlannel})
	if err != nil {
		t.Fatal(err)
	}

	if len(res.Manifests) != 0 || len(res.ExtraManifests) != 0 || res.CNINone || res.DisableKubeProxy {
		t.Errorf("flannel without flux must leave Talos's defaults alone: %+v", res)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()

	key := testKey(t)
	pool := []netip.Prefix{netip.MustParsePrefix("10.10.0.30/32")}

	cases := []struct {
		name string
		in   platform.Input
		want string // substring of the error; empty: valid
	}{
		{"cilium ok", platform.Input{ClusterName: "a", KubernetesVersion: "1.35.1", CNI: platform.CNICilium, LoadBalancerPool: pool}, ""},
		{"unknown cni", platform.Input{ClusterName: "a", KubernetesVersion: "1.35.1", CNI: "calico"}, `cni "calico" is not one of`},
		{"cilium without pool", platform.Input{ClusterName: "a", KubernetesVersion: "1.35.1", CNI: platform.CNICilium}, "needs a load-balancer pool"},
		{"pool with flannel", platform.Input{ClusterName: "a", KubernetesVersion: "1.35.1", CNI: platform.CNIFlannel, LoadBalancerPool: pool}, "needs cni cilium"},
		{"pool not masked", platform.Input{ClusterName: "a", KubernetesVersion: "1.35.1", CNI: platform.CNICilium,
			LoadBalancerPool: []netip.Prefix{netip.MustParsePrefix("10.10.0.30/24")}}, "not a network prefix"},
		{"bad version", platform.Input{ClusterName: "a", KubernetesVersion: "latest", CNI: platform.CNIFlannel}, "kubernetes version"},
		{"ssh without key", platform.Input{ClusterName: "a", KubernetesVersion: "1.35.1", CNI: platform.CNIFlannel,
			Flux: &platform.FluxInput{URL: "ssh://git@github.com/o/r.git"}}, "no deploy key"},
		{"other host needs known hosts", platform.Input{ClusterName: "a", KubernetesVersion: "1.35.1", CNI: platform.CNIFlannel,
			Flux: &platform.FluxInput{URL: "ssh://git@git.example.com/o/r.git", DeployKey: key}}, "known hosts must be given"},
		{"https with password", platform.Input{ClusterName: "a", KubernetesVersion: "1.35.1", CNI: platform.CNIFlannel,
			Flux: &platform.FluxInput{URL: "https://user:hunter2@github.com/o/r.git"}}, "must not carry credentials"},
		{"not a git url", platform.Input{ClusterName: "a", KubernetesVersion: "1.35.1", CNI: platform.CNIFlannel,
			Flux: &platform.FluxInput{URL: "git@github.com:o/r.git"}}, "is not ssh://"},
		{"absolute path", platform.Input{ClusterName: "a", KubernetesVersion: "1.35.1", CNI: platform.CNIFlannel,
			Flux: &platform.FluxInput{URL: "https://github.com/o/r.git", Path: "/clusters"}}, "relative"},
		{"bad branch", platform.Input{ClusterName: "a", KubernetesVersion: "1.35.1", CNI: platform.CNIFlannel,
			Flux: &platform.FluxInput{URL: "https://github.com/o/r.git", Branch: "a..b"}}, "not a valid branch"},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			err := tc.in.Validate()

			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "hunter2"):
				t.Fatalf("error quotes a password: %v", err)
			}
		})
	}
}
