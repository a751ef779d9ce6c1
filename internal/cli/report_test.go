package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/sandbox"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
)

// readReport checks the report file's mode and decodes it.
func readReport(t *testing.T, path string) (map[string]any, string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no report written: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("report mode = %v, want 0600", st.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, raw)
	}
	return top, string(raw)
}

func TestProvisionSandboxReport(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "report.json")
	r := run(t, invocation{args: []string{"provision", "--sandbox", "--sandbox-speed", fast, "--output", "json", "--report", path}})
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s\nstdout:\n%s", r.code, r.err, r.out)
	}
	top, raw := readReport(t, path)
	for _, key := range []string{"cli_added_seconds", "cli_added_seconds_real", "active_seconds", "wall_seconds",
		"critical_path_seconds", "cpu_on_path_seconds", "requests_total"} {
		if _, ok := top[key].(float64); !ok {
			t.Errorf("%s = %v, want a number", key, top[key])
		}
	}
	if top["time_scale"] != 400.0 || top["sandbox"] != true || top["outcome"] != "ok" {
		t.Errorf("time_scale, sandbox, outcome = %v, %v, %v", top["time_scale"], top["sandbox"], top["outcome"])
	}
	waits, _ := top["waits"].([]any)
	observed := 0
	for _, w := range waits {
		w := w.(map[string]any)
		if _, ok := w["condition_true_at"].(float64); ok {
			if _, ok := w["lag_seconds"].(float64); ok {
				observed++
			}
		}
	}
	if observed < 5 {
		t.Errorf("only %d waits have a condition time and a lag:\n%s", observed, raw)
	}
	req, _ := top["requests"].(map[string]any)
	for _, svc := range []string{"scaleway", "cloudflare", "infisical", "teleport", "talos", "ipdetect"} {
		if _, ok := req[svc].(map[string]any); !ok {
			t.Errorf("no request counts for %s", svc)
		}
	}
	for _, secret := range []string{sandbox.CloudflareToken, sandbox.InfisicalClientSecret, scaleway.SandboxSecretKey, "PRIVATE KEY"} {
		if strings.Contains(raw, secret) {
			t.Errorf("report contains secret %q", secret)
		}
	}
}

// A real run writes what it knows: here phase 0 refuses the settings.
func TestProvisionReportWithoutSandbox(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "report.json")
	r := run(t, invocation{args: []string{"provision", "--scaleway-secret-key", secretKey, "--report", path}})
	if r.code != 2 {
		t.Fatalf("exit %d, want 2\nstderr:\n%s", r.code, r.err)
	}
	top, raw := readReport(t, path)
	for _, key := range []string{"cli_added_seconds", "cli_added_seconds_real", "critical_path_seconds"} {
		if v, ok := top[key]; !ok || v != nil {
			t.Errorf("%s = %v (present %v), want null", key, v, ok)
		}
	}
	// Requests are counted at the wire in real runs: phase 0 refused the
	// settings before any was sent.
	if req, ok := top["requests"].(map[string]any); !ok || len(req) != 0 || top["requests_total"] != 0.0 {
		t.Errorf("requests = %v, total %v; want counted, and none", top["requests"], top["requests_total"])
	}
	if top["outcome"] != "failed" || top["time_scale"] != 1.0 {
		t.Errorf("outcome, time_scale = %v, %v", top["outcome"], top["time_scale"])
	}
	if strings.Contains(raw, secretKey) {
		t.Error("report contains the Scaleway secret key")
	}
}
