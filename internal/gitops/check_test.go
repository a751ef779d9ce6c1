package gitops

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// edit replaces old with new in the file rel under dir, failing the test
// when old is not there (so a template change cannot silently void a case).
func edit(t *testing.T, dir, rel, old, new string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s does not contain %q", rel, old)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCheckCatchesEachDefect breaks a scaffolded tree in one way at a time;
// check must report exactly that defect, as "file: object: what is wrong",
// and nothing else.
func TestCheckCatchesEachDefect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		// want are the problems, each as "file: object: " + a substring of the message.
		want []string
	}{
		{"dependsOn a missing Kustomization", func(t *testing.T, dir string) {
			edit(t, dir, "clusters/demo/apps.yaml", "- name: cloudnative-pg", "- name: cloudnative-pgsql")
		}, []string{"clusters/demo/apps.yaml: Kustomization flux-system/spicedb: spec.dependsOn: flux-system/cloudnative-pgsql does not exist in this repository"}},

		{"dependsOn cycle", func(t *testing.T, dir string) {
			edit(t, dir, "clusters/demo/infrastructure.yaml", "path: ./infrastructure/external-secrets-operator\n", "path: ./infrastructure/external-secrets-operator\n  dependsOn:\n    - name: cilium-gateway\n")
		}, []string{"clusters/demo/infrastructure.yaml: Kustomization flux-system/cert-manager: spec.dependsOn forms a cycle: flux-system/cert-manager → flux-system/onepassword-connect → flux-system/external-secrets-operator → flux-system/cilium-gateway → flux-system/cert-manager-issuer → flux-system/cert-manager"}},

		{"a field the CRD does not know", func(t *testing.T, dir string) {
			edit(t, dir, "infrastructure/cert-manager/issuer/clusterissuer.yaml", "    email:", "    emial:")
		}, []string{`infrastructure/cert-manager/issuer/clusterissuer.yaml: ClusterIssuer letsencrypt: unknown field "spec.acme.emial" (not in the schema of CRD clusterissuers.cert-manager.io)`}},

		{"a field Kubernetes does not know", func(t *testing.T, dir string) {
			edit(t, dir, "apps/spicedb/namespace.yaml", "  name: spicedb\n", "  name: spicedb\n  label:\n    team: platform\n")
		}, []string{`apps/spicedb/namespace.yaml: Namespace spicedb: unknown field "metadata.label"`}},

		{"a value of the wrong type", func(t *testing.T, dir string) {
			edit(t, dir, "apps/spicedb/postgres.yaml", "instances: 2", `instances: "two"`)
		}, []string{`apps/spicedb/postgres.yaml: Cluster spicedb/spicedb-pg: spec.instances: Invalid value: "string": spec.instances in body must be of type integer: "string"`}},

		{"a broken CEL rule of the CRD", func(t *testing.T, dir string) {
			edit(t, dir, "apps/spicedb/grpcroute.yaml", "          port: 50051\n", "")
		}, []string{"apps/spicedb/grpcroute.yaml: GRPCRoute spicedb/spicedb: spec.rules[0].backendRefs[0]: Invalid value: Must have port for Service reference"}},

		{"a Secret with data", func(t *testing.T, dir string) {
			write(t, dir, "infrastructure/external-dns/token.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: cloudflare\n  namespace: external-dns\nstringData:\n  token: abc\n")
			edit(t, dir, "infrastructure/external-dns/kustomization.yaml", "  - externalsecret.yaml\n", "  - externalsecret.yaml\n  - token.yaml\n")
		}, []string{"infrastructure/external-dns/token.yaml: Secret external-dns/cloudflare: Secret carries data in Git (stringData.token)"}},

		{"a Secret from a generator", func(t *testing.T, dir string) {
			edit(t, dir, "infrastructure/external-dns/kustomization.yaml", "resources:", "secretGenerator:\n  - name: cf\n    namespace: external-dns\n    literals: [token=abc]\nresources:")
		}, []string{"infrastructure/external-dns/kustomization.yaml: Secret external-dns/cf-"}},

		{"a broken kustomization.yaml", func(t *testing.T, dir string) {
			edit(t, dir, "infrastructure/external-dns/kustomization.yaml", "  - helmrelease.yaml", "  - helmrelease.yml")
		}, []string{"infrastructure/external-dns/kustomization.yaml: kustomize build ./infrastructure/external-dns: "}},

		{"a kustomization.yaml that is not YAML", func(t *testing.T, dir string) {
			edit(t, dir, "infrastructure/cloudnative-pg/kustomization.yaml", "resources:\n", "resources:\n\t- [\n")
		}, []string{"infrastructure/cloudnative-pg/kustomization.yaml: kustomize build ./infrastructure/cloudnative-pg: "}},

		{"a Kustomization path that does not exist", func(t *testing.T, dir string) {
			edit(t, dir, "clusters/demo/infrastructure.yaml", "path: ./infrastructure/cloudnative-pg", "path: ./infrastructure/cloudnativepg")
		}, []string{`clusters/demo/infrastructure.yaml: Kustomization flux-system/cloudnative-pg: spec.path "./infrastructure/cloudnativepg" does not exist in the repository`}},

		{"a HelmRelease whose repository is missing", func(t *testing.T, dir string) {
			edit(t, dir, "infrastructure/cert-manager/kustomization.yaml", "  - helmrepository.yaml\n", "")
		}, []string{"infrastructure/cert-manager/helmrelease.yaml: HelmRelease cert-manager/cert-manager: spec.chart.spec.sourceRef: HelmRepository cert-manager/cert-manager does not exist in this repository"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := scaffold(t, testParams(StoreOnePassword))
			tt.break_(t, dir)
			res, err := Check(context.Background(), dir, testSchemas(t), CheckOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range res.Problems {
				got = append(got, p.String())
			}
			matched := make([]bool, len(got))
			for _, w := range tt.want {
				found := false
				for i, g := range got {
					if strings.HasPrefix(g, w) || strings.Contains(g, w) && strings.HasPrefix(g, strings.SplitN(w, ": ", 2)[0]) {
						found, matched[i] = true, true
					}
				}
				if !found {
					t.Errorf("no problem %q in:\n%s", w, strings.Join(got, "\n"))
				}
			}
			for i, g := range got {
				if !matched[i] {
					t.Errorf("unexpected problem: %s", g)
				}
			}
		})
	}
}

// TestCheckBuildsPathsWithoutKustomization does what Flux does for a path
// with no kustomization file: every manifest under it, recursively.
func TestCheckBuildsPathsWithoutKustomization(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, dir, "clusters/prod/apps.yaml", `apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 10m
  path: ./apps
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
`)
	write(t, dir, "apps/web/deployment.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: web\nspec:\n  replicas: 1\n  selectr: {}\n")
	write(t, dir, "apps/values.yaml", "replicaCount: 2\n") // not a manifest: skipped, as Flux skips it
	res, err := Check(context.Background(), dir, testSchemas(t), CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Built, " ") != "./apps ./clusters/prod" {
		t.Errorf("built %v", res.Built)
	}
	if len(res.Problems) != 1 || res.Problems[0].String() != `apps/web/deployment.yaml: Deployment web/web: unknown field "spec.selectr"` {
		t.Errorf("problems: %v", res.Problems)
	}
}

// TestCheckSubstitutesPostBuildVariables applies spec.postBuild before
// validating, so a typed field filled by a variable is not a false alarm,
// and a variable only the cluster knows leaves its object unchecked.
func TestCheckSubstitutesPostBuildVariables(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, dir, "clusters/prod/apps.yaml", `apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 10m
  path: ./apps
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
  postBuild:
    substitute:
      replicas: "3"
    substituteFrom:
      - kind: ConfigMap
        name: cluster-vars
`)
	write(t, dir, "apps/kustomization.yaml", "resources: [web.yaml, db.yaml]\n")
	write(t, dir, "apps/web.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: web\nspec:\n  replicas: ${replicas}\n  minReadySeconds: ${delay:=5}\n")
	write(t, dir, "apps/db.yaml", "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: db\n  namespace: db\nspec:\n  instances: ${db_instances}\n")
	res, err := Check(context.Background(), dir, testSchemas(t), CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// ./apps is built once, with the variables, as Flux builds it.
	for _, p := range res.Problems {
		t.Errorf("unexpected problem: %s", p)
	}
	found := false
	for _, u := range res.Unchecked {
		if u.File == "apps/db.yaml" && strings.Contains(u.Message, "${db_instances}") {
			found = true
		}
	}
	if !found {
		t.Errorf("apps/db.yaml not listed as unchecked: %v", res.Unchecked)
	}
}

// TestEmbeddedCRDsCompile compiles every embedded schema (normally done
// lazily, on first use) so a CRD that cannot be used fails here, not in a
// user's CI; and checks each project the check promises is there.
func TestEmbeddedCRDsCompile(t *testing.T) {
	t.Parallel()
	s, err := NewSchemas()
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string]bool{}
	for gvk, cv := range s.custom {
		if err := cv.compile(); err != nil {
			t.Errorf("%s: %v", gvk, err)
		}
		groups[gvk.Group] = true
	}
	for _, g := range []string{"kustomize.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io", "source.toolkit.fluxcd.io", "cert-manager.io",
		"external-secrets.io", "postgresql.cnpg.io", "authzed.com", "gateway.networking.k8s.io", "cilium.io"} {
		if !groups[g] {
			t.Errorf("no CRD of group %s embedded", g)
		}
	}
}
