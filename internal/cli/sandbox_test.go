package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fast keeps full sandbox runs short in tests; the CLI's waits scale with it.
const fast = "400"

// lastEvent decodes the final JSON event of a run.
func lastEvent(t *testing.T, out string) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var ev map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &ev); err != nil {
		t.Fatalf("last line is not JSON: %v\n%s", err, out)
	}
	return ev
}

func count(ev map[string]any, key string) int {
	list, _ := ev[key].([]any)
	return len(list)
}

func TestProvisionSandboxJSONEndsWithInventory(t *testing.T) {
	t.Parallel()
	r := run(t, invocation{args: []string{"provision", "--sandbox", "--sandbox-speed", fast, "--output", "json", "--cluster-name", "json-demo"}})
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s\nstdout:\n%s", r.code, r.err, r.out)
	}
	for i, line := range strings.Split(strings.TrimSpace(r.out), "\n") {
		if !json.Valid([]byte(line)) {
			t.Fatalf("line %d is not JSON: %s", i+1, line)
		}
	}
	ev := lastEvent(t, r.out)
	if ev["type"] != "inventory" {
		t.Fatalf("last event is %v, want inventory", ev["type"])
	}
	for key, want := range map[string]int{"servers": 1, "dns_records": 1, "tokens": 0, "kube_servers": 1, "secrets": 3} {
		if got := count(ev, key); got != want {
			t.Errorf("inventory %s = %d, want %d: %v", key, got, want, ev[key])
		}
	}
	if !strings.Contains(r.out, `"type":"summary"`) {
		t.Error("no summary event")
	}
}

// Whatever the file, environment and flags say, the sandbox talks only to
// its emulators: real-looking endpoints and credentials are overridden, and
// the run still succeeds against the emulators.
func TestSandboxIgnoresRealEndpoints(t *testing.T) {
	t.Parallel()
	inv := invocation{
		homeFile: "cloudflare-api-token: " + cfTokenFromInf + "\ncloudflare-zone-id: 0123456789abcdef0123456789abcdef\ncloudflare-dns-name: k8s.example.com\n",
		env: map[string]string{
			"RAWKODE_CLOUD_SCALEWAY_ACCESS_KEY": accessKey,
			"RAWKODE_CLOUD_SCALEWAY_SECRET_KEY": secretKey,
			"RAWKODE_CLOUD_INFISICAL_URL":       "https://infisical.example.com",
		},
		args: []string{"provision", "--sandbox", "--sandbox-speed", fast, "--output", "json",
			"--cluster-name", "honoured", "--teleport-proxy", "teleport.example.com:443",
			"--infisical-client-id", "real-client", "--infisical-client-secret", clientSecret, "--infisical-project-id", "real-project"},
	}
	r := run(t, inv)
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s\nstdout:\n%s", r.code, r.err, r.out)
	}
	r.assertNoSecrets(t)
	ev := lastEvent(t, r.out)
	servers, _ := ev["servers"].([]any)
	if len(servers) != 1 || !strings.Contains(servers[0].(map[string]any)["tags"].(string), "cluster=honoured") {
		t.Errorf("cluster name not honoured: %v", servers)
	}

	inv.args = []string{"config", "show", "--sandbox", "--output", "json", "--cluster-name", "honoured", "--teleport-proxy", "teleport.example.com:443"}
	r = run(t, inv)
	if r.code != 0 {
		t.Fatalf("config show exit %d: %s", r.code, r.err)
	}
	var shown map[string]struct {
		Value  any
		Source string
	}
	if err := json.Unmarshal([]byte(r.out), &shown); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"scaleway-access-key", "scaleway-secret-key", "teleport-proxy", "cloudflare-api-token", "infisical-url", "infisical-client-secret"} {
		if shown[name].Source != "sandbox" {
			t.Errorf("%s source = %q, want sandbox", name, shown[name].Source)
		}
	}
	if shown["cluster-name"].Source != "flag" || shown["cluster-name"].Value != "honoured" {
		t.Errorf("cluster-name = %+v, want the flag's value", shown["cluster-name"])
	}
	if strings.Contains(r.out, "example.com:443") || strings.Contains(r.out, "infisical.example.com") {
		t.Errorf("a real endpoint survived in the sandbox config:\n%s", r.out)
	}
}

func TestPlanWithOnlyNames(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "artifacts")
	r := run(t, invocation{args: []string{"plan", "--cluster-name", "plan-demo", "--teleport-proxy", "teleport.example.com:443",
		"--cloudflare-api-token", cfTokenFromInf, "--cloudflare-zone-id", "0123456789abcdef0123456789abcdef", "--cloudflare-dns-name", "k8s.example.com",
		"--render", dir}})
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	r.assertNoSecrets(t)
	for _, want := range []string{"Phase 6 Verify and lock down", "operator-talos-api: tcp/50000 from 198.51.100.10/32", "192.0.2.10", "k8s.example.com", "0600"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("plan output lacks %q:\n%s", want, r.out)
		}
	}
	modes := map[string]os.FileMode{"user-data.yaml": 0o644, "controlplane.yaml": 0o600, "controlplane-lockdown.yaml": 0o600, "talosconfig": 0o600}
	for name, want := range modes {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %o, want %o", name, st.Mode().Perm(), want)
		}
	}
	cp, _ := os.ReadFile(filepath.Join(dir, "controlplane.yaml"))
	if !strings.Contains(string(cp), "operator-kube-api") {
		t.Error("rendered controlplane.yaml lacks the operator rule")
	}
	lock, _ := os.ReadFile(filepath.Join(dir, "controlplane-lockdown.yaml"))
	if strings.Contains(string(lock), "operator-") {
		t.Error("rendered lockdown config still has operator rules")
	}
}

func TestPlanJSON(t *testing.T) {
	t.Parallel()
	r := run(t, invocation{args: []string{"plan", "--cluster-name", "plan-json", "--output", "json"}})
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	var doc struct {
		Cluster  string
		Steps    []struct{ Phase string }
		Firewall []string
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, r.out)
	}
	if doc.Cluster != "plan-json" || len(doc.Steps) != 7 || len(doc.Firewall) == 0 {
		t.Errorf("plan document: %+v", doc)
	}
}

func TestDestroySandboxNothingThere(t *testing.T) {
	t.Parallel()
	r := run(t, invocation{args: []string{"destroy", "--sandbox", "--cluster-name", "ghost", "--yes", "--output", "plain"}})
	if r.code != 0 {
		t.Fatalf("exit %d: %s\n%s", r.code, r.err, r.out)
	}
	if !strings.Contains(r.out, "already gone") {
		t.Errorf("destroy of nothing does not say so:\n%s", r.out)
	}
}

func TestDestroyNeedsConfirmationOffTerminal(t *testing.T) {
	t.Parallel()
	r := run(t, invocation{args: []string{"destroy", "--sandbox", "--cluster-name", "ghost"}})
	r.assertUsageError(t, "--yes")
}
