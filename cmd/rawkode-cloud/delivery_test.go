package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The maintenance-mode window, rehearsed through the real binary: a
// stranger configures every node the moment it enters maintenance mode.
func TestHijackThroughTheBinary(t *testing.T) {
	t.Parallel()
	t.Run("maintenance delivery notices and undoes", func(t *testing.T) {
		t.Parallel()
		iso := newIsolated(t)
		code, out, errOut := iso.run(t, "provision", "--sandbox", "--output", "json", "--sandbox-fault", "talos.maintenance=hijack")
		if code != 1 {
			t.Fatalf("exit %d, want 1\nstderr:\n%s", code, errOut)
		}
		if !strings.Contains(errOut, "possible hijack") || !strings.Contains(errOut, "not signed by this cluster's CA") {
			t.Errorf("stderr does not name a possible hijack:\n%s", errOut)
		}
		if inv := lastInventory(t, out); len(inv["servers"]) != 0 || len(inv["dns_records"]) != 0 || len(inv["tokens"]) != 0 {
			t.Errorf("not everything was undone: %v", inv)
		}
	})
	t.Run("install delivery never waits in maintenance mode", func(t *testing.T) {
		t.Parallel()
		iso := newIsolated(t)
		code, out, errOut := iso.run(t, "provision", "--sandbox", "--output", "json", "--talos-config-delivery", "install", "--sandbox-fault", "talos.maintenance=hijack")
		if code != 0 {
			t.Fatalf("exit %d, want 0\nstderr:\n%s", code, errOut)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, `"wait":"Talos maintenance mode`) {
				t.Errorf("the run waited for maintenance mode: %s", line)
			}
		}
		if !strings.Contains(out, "config volume wiped and dropped") {
			t.Error("the run did not say the delivery traces were removed")
		}
		inv := lastInventory(t, out)
		if len(inv["servers"]) != 1 || len(inv["kube_servers"]) != 1 {
			t.Errorf("want one server and one registered cluster, got %v", inv)
		}
	})
}

// plan shows the user data that carries the config, and keeps it 0600.
func TestPlanRendersInstallDelivery(t *testing.T) {
	t.Parallel()
	iso := newIsolated(t)
	dir := filepath.Join(iso.cwd, "out")
	code, out, errOut := iso.run(t, "plan", "--cluster-name", "demo", "--talos-config-delivery", "install", "--render", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if !strings.Contains(out, "without an OS") || !strings.Contains(out, "never serves maintenance mode") {
		t.Errorf("plan does not describe install delivery:\n%s", out)
	}
	st, err := os.Stat(filepath.Join(dir, "user-data.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("user-data.yaml is %04o; it carries the machine config and must be 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(filepath.Join(dir, "user-data.yaml"))
	if !strings.Contains(string(data), "metal-iso.img") || !strings.Contains(string(data), "gz+b64") {
		t.Error("user-data.yaml carries no config volume")
	}
}

func lastInventory(t *testing.T, out string) map[string][]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		var ev map[string]any
		if json.Unmarshal([]byte(lines[i]), &ev) != nil || ev["type"] != "inventory" {
			continue
		}
		inv := map[string][]any{}
		for k, v := range ev {
			if l, ok := v.([]any); ok {
				inv[k] = l
			}
		}
		return inv
	}
	t.Fatalf("no inventory line in output:\n%s", out)
	return nil
}
