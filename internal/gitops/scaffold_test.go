package gitops

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/golden"
)

var (
	schemasOnce sync.Once
	schemasVal  *Schemas
	schemasErr  error
)

// testSchemas loads the embedded CRDs once for the whole package's tests.
func testSchemas(t *testing.T) *Schemas {
	t.Helper()
	schemasOnce.Do(func() { schemasVal, schemasErr = NewSchemas() })
	if schemasErr != nil {
		t.Fatal(schemasErr)
	}
	return schemasVal
}

func testParams(store string) Params {
	return Params{
		Cluster: "demo", Domain: "example.com", ACMEEmail: "ops@example.com", BackupBucket: "demo-pg-backups",
		BackupEndpoint: "https://s3.fr-par.scw.cloud", SecretStore: store,
		Infisical: InfisicalScope{Host: "https://app.infisical.com", ProjectSlug: "platform", Environment: "prod", Path: "/"},
	}
}

func scaffold(t *testing.T, p Params) string {
	t.Helper()
	files, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := Write(dir, files, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestScaffoldPassesCheck is the contract: what scaffold writes, check
// accepts, for either secret store and for the disaster-recovery variant.
func TestScaffoldPassesCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		store   string
		restore bool
	}{{"onepassword", StoreOnePassword, false}, {"infisical", StoreInfisical, false}, {"restore", StoreOnePassword, true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := testParams(tc.store)
			p.Restore = tc.restore
			dir := scaffold(t, p)
			res, err := Check(context.Background(), dir, testSchemas(t), CheckOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, pr := range res.Problems {
				t.Errorf("problem: %s", pr)
			}
			for _, u := range res.Unchecked {
				if !strings.Contains(u.Message, "GitRepository spicedb-operator") {
					t.Errorf("unchecked: %s", u)
				}
			}
			if res.Objects < 40 {
				t.Errorf("only %d objects validated", res.Objects)
			}
		})
	}
}

// TestKubectlKustomizeBuildsEveryPath proves the tree with a kustomize
// nobody here wrote, under its default (stricter) load restrictions.
func TestKubectlKustomizeBuildsEveryPath(t *testing.T) {
	t.Parallel()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed: the Go kustomize build in TestScaffoldPassesCheck still covers every path")
	}
	for _, store := range []string{StoreOnePassword, StoreInfisical} {
		files, err := Render(testParams(store))
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if _, err := Write(dir, files, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, d := range Dirs(files) {
			out, err := exec.Command(kubectl, "kustomize", filepath.Join(dir, d)).CombinedOutput()
			if err != nil {
				t.Errorf("%s: kubectl kustomize %s: %v\n%s", store, d, err, out)
			}
		}
	}
}

func TestScaffoldHasNoSecretValues(t *testing.T) {
	t.Parallel()
	files, err := Render(testParams(StoreOnePassword))
	if err != nil {
		t.Fatal(err)
	}
	for p, data := range files {
		if !strings.HasSuffix(p, ".yaml") {
			continue
		}
		objs, err := decodeObjects(data)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, o := range objs {
			if str(o, "kind") == "Secret" {
				t.Errorf("%s defines a Secret", p)
			}
		}
	}
}

// TestScaffoldGolden pins the whole tree, one reviewable file per variant:
// go test ./internal/gitops -run Golden -update rewrites them.
func TestScaffoldGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		store   string
		restore bool
	}{{"onepassword", StoreOnePassword, false}, {"infisical", StoreInfisical, false}, {"restore", StoreOnePassword, true}} {
		p := testParams(tc.store)
		p.Restore = tc.restore
		files, err := Render(p)
		if err != nil {
			t.Fatal(err)
		}
		paths := make([]string, 0, len(files))
		for f := range files {
			paths = append(paths, f)
		}
		sort.Strings(paths)
		var b strings.Builder
		for _, f := range paths {
			fmt.Fprintf(&b, "=== %s ===\n%s", f, files[f])
		}
		golden.Compare(t, filepath.Join("testdata", "scaffold-"+tc.name+".golden"), []byte(b.String()))
	}
}
