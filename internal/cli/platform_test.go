package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func scaffoldArgs(dir string, extra ...string) []string {
	return append([]string{"platform", "scaffold", dir, "--cluster-name", "demo", "--domain", "example.com",
		"--acme-email", "ops@example.com", "--backup-bucket", "demo-pg-backups"}, extra...)
}

// TestPlatformScaffoldThenCheck runs both commands through the CLI for each
// secret store: the scaffold's tree must check clean (exit 0).
func TestPlatformScaffoldThenCheck(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"onepassword", "infisical"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "platform")
			r := run(t, invocation{args: scaffoldArgs(dir, "--platform-secret-store", store, "--infisical-project-slug", "platform")})
			if r.code != 0 {
				t.Fatalf("scaffold exit %d: %s", r.code, r.err)
			}
			if _, err := os.Stat(filepath.Join(dir, "clusters", "demo", "infrastructure.yaml")); err != nil {
				t.Fatal(err)
			}
			r = run(t, invocation{args: []string{"platform", "check", dir}})
			if r.code != 0 || !strings.Contains(r.out, " 0 problems") {
				t.Fatalf("check exit %d:\n%s%s", r.code, r.out, r.err)
			}
		})
	}
}

func TestPlatformScaffoldIsSafeToRerun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if r := run(t, invocation{args: scaffoldArgs(dir)}); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	r := run(t, invocation{args: scaffoldArgs(dir)})
	if r.code != 0 || !strings.Contains(r.out, "0 created, 0 overwritten, 44 unchanged") {
		t.Errorf("second run exit %d:\n%s%s", r.code, r.out, r.err)
	}
	// The user edits one file: a re-run names it and writes nothing.
	edited := filepath.Join(dir, "apps", "spicedb", "spicedb.yaml")
	if err := os.WriteFile(edited, []byte("# mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "infrastructure", "cilium-gateway", "gateway.yaml")
	before, _ := os.ReadFile(other)
	r = run(t, invocation{args: scaffoldArgs(dir, "--domain", "example.org")})
	if r.code != 1 || !strings.Contains(r.err, "apps/spicedb/spicedb.yaml") || !strings.Contains(r.err, "--force") {
		t.Errorf("changed file: exit %d, stderr:\n%s", r.code, r.err)
	}
	if after, _ := os.ReadFile(other); string(after) != string(before) {
		t.Errorf("%s was rewritten although the run refused", other)
	}
	// --dry-run lists and writes nothing; --force overwrites.
	r = run(t, invocation{args: scaffoldArgs(dir, "--force", "--dry-run")})
	if r.code != 0 || !strings.Contains(r.out, "would overwrite") {
		t.Errorf("dry run exit %d:\n%s%s", r.code, r.out, r.err)
	}
	if got, _ := os.ReadFile(edited); string(got) != "# mine\n" {
		t.Error("--dry-run wrote a file")
	}
	if r := run(t, invocation{args: scaffoldArgs(dir, "--force")}); r.code != 0 {
		t.Errorf("--force exit %d: %s", r.code, r.err)
	}
	if got, _ := os.ReadFile(edited); string(got) == "# mine\n" {
		t.Error("--force did not overwrite the changed file")
	}
}

func TestPlatformScaffoldNeedsItsSettings(t *testing.T) {
	t.Parallel()
	r := run(t, invocation{args: []string{"platform", "scaffold", t.TempDir(), "--cluster-name", "demo"}})
	r.assertUsageError(t, "domain:", "acme-email:", "backup-bucket:")
	r = run(t, invocation{args: scaffoldArgs(t.TempDir(), "--platform-secret-store", "infisical")})
	r.assertUsageError(t, "infisical-project-slug")
}

func TestPlatformCheckReportsProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte("resources: [secret.yaml]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret.yaml"), []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: default}\ndata: {k: dg==}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, invocation{args: []string{"platform", "check", dir}})
	if r.code != 1 || !strings.Contains(r.out, "secret.yaml: Secret default/s: Secret carries data in Git") {
		t.Errorf("exit %d:\n%s%s", r.code, r.out, r.err)
	}
	r = run(t, invocation{args: []string{"platform", "check", filepath.Join(dir, "missing")}})
	if r.code != 2 {
		t.Errorf("missing dir: exit %d: %s", r.code, r.err)
	}
}

// TestPlatformScaffoldRestoreFromBackup switches an existing tree to
// recovery: only the database file changes, and the tree still checks clean.
func TestPlatformScaffoldRestoreFromBackup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if r := run(t, invocation{args: scaffoldArgs(dir)}); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	r := run(t, invocation{args: scaffoldArgs(dir, "--restore-from-backup")})
	if r.code != 1 || !strings.Contains(r.err, "apps/spicedb/postgres.yaml") {
		t.Errorf("without --force: exit %d: %s", r.code, r.err)
	}
	r = run(t, invocation{args: scaffoldArgs(dir, "--restore-from-backup", "--force")})
	if r.code != 0 || !strings.Contains(r.out, "overwrite         apps/spicedb/postgres.yaml") && !strings.Contains(r.out, "overwrite        apps/spicedb/postgres.yaml") {
		t.Errorf("--force: exit %d:\n%s%s", r.code, r.out, r.err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "apps", "spicedb", "postgres.yaml"))
	if err != nil || !strings.Contains(string(data), "recovery:") || !strings.Contains(string(data), "destinationPath: s3://demo-pg-backups/") {
		t.Errorf("postgres.yaml does not recover from the backup:\n%s", data)
	}
	if r := run(t, invocation{args: []string{"platform", "check", dir}}); r.code != 0 {
		t.Errorf("check exit %d:\n%s", r.code, r.out)
	}
}
