package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	"github.com/siderolabs/talos/pkg/machinery/config/validation"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/golden"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
)

// planBundle is the committed secrets bundle the plan goldens are rendered
// from (created once with -update), so that they are deterministic.
var planBundle = sync.OnceValues(func() (*secrets.Bundle, error) {
	path := filepath.Join("testdata", "plan", "secrets.yaml")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && golden.Updating() {
		b, genErr := secrets.NewBundle(secrets.NewFixedClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)), nil)
		if genErr != nil {
			return nil, genErr
		}
		if data, err = machineconfig.MarshalSecrets(b); err != nil {
			return nil, err
		}
		err = os.WriteFile(path, data, 0o600)
	}
	if err != nil {
		return nil, err
	}
	return machineconfig.UnmarshalSecrets(data)
})

// The talosconfig's client key is fresh on every render.
var planClientCertRE = regexp.MustCompile(`(?m)^(\s+(crt|key)): \S+$`)

// plan --control-planes 3 --workers 1 --render writes one config and one
// lockdown config per node, named after it; each is what Talos's own
// validator accepts for bare metal, and each is the right kind of node.
func TestPlanRendersEveryNode(t *testing.T) {
	t.Parallel()
	bundle, err := planBundle()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.New()
	for k, v := range map[string]string{config.ClusterName: "ha", config.ControlPlanes: "3", config.Workers: "1",
		config.TeleportProxy: "teleport.example.com:443", config.CloudflareDNSName: "k8s.example.com", config.CloudflareZoneID: "0123456789abcdef0123456789abcdef"} {
		cfg.Set(k, v, config.FromFlag, "")
	}
	doc, rend, err := buildPlan(cfg, bundle)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := renderArtifacts(dir, rend)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f.Path))
	}
	want := "user-data.yaml ha-cp-1.yaml ha-cp-1-lockdown.yaml ha-cp-2.yaml ha-cp-2-lockdown.yaml ha-cp-3.yaml ha-cp-3-lockdown.yaml ha-worker-1.yaml ha-worker-1-lockdown.yaml talosconfig"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("rendered %s\nwant     %s", got, want)
	}
	if doc.FirewallNode != "ha-cp-1" {
		t.Errorf("firewall shown of %q, want ha-cp-1", doc.FirewallNode)
	}
	for _, f := range files {
		name := filepath.Base(f.Path)
		st, err := os.Stat(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		if wantMode := map[bool]os.FileMode{true: 0o600, false: 0o644}[f.Secret]; st.Mode().Perm() != wantMode {
			t.Errorf("%s mode %04o, want %04o", name, st.Mode().Perm(), wantMode)
		}
		data, err := os.ReadFile(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		if name == "talosconfig" {
			data = planClientCertRE.ReplaceAll(data, []byte("$1: <fresh on every render>"))
			for _, ep := range []string{"192.0.2.10", "192.0.2.11", "192.0.2.12"} {
				if !bytes.Contains(data, []byte(ep)) {
					t.Errorf("talosconfig lacks control plane %s as an endpoint", ep)
				}
			}
		}
		golden.Compare(t, filepath.Join("testdata", "plan", name), data)
		if name == "user-data.yaml" || name == "talosconfig" {
			continue
		}
		node := strings.TrimSuffix(strings.TrimSuffix(name, ".yaml"), "-lockdown")
		c, err := configloader.NewFromBytes(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// talosctl validate --mode metal --strict
		if _, err := c.Validate(machineconfig.MetalMode{}, validation.WithLocal(), validation.WithStrict()); err != nil {
			t.Errorf("%s: Talos's validator refuses it for metal: %v", name, err)
		}
		wantType := machine.TypeControlPlane
		if strings.Contains(node, "-worker-") {
			wantType = machine.TypeWorker
		}
		if got := c.Machine().Type(); got != wantType {
			t.Errorf("%s is a %s config, want %s", name, got, wantType)
		}
		if !bytes.Contains(data, []byte("hostname: "+node)) {
			t.Errorf("%s does not name the node %s", name, node)
		}
		if hasOperator := bytes.Contains(data, []byte("operator-")); hasOperator == strings.HasSuffix(name, "-lockdown.yaml") {
			t.Errorf("%s: operator rules present = %v", name, hasOperator)
		}
	}
}

// The single-node render keeps its historical names.
func TestPlanRendersOneNodeUnderItsOldNames(t *testing.T) {
	t.Parallel()
	bundle, err := planBundle()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.New()
	cfg.Set(config.ClusterName, "solo", config.FromFlag, "")
	_, rend, err := buildPlan(cfg, bundle)
	if err != nil {
		t.Fatal(err)
	}
	files, err := renderArtifacts(t.TempDir(), rend)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f.Path))
	}
	if got, want := strings.Join(names, " "), "user-data.yaml controlplane.yaml controlplane-lockdown.yaml talosconfig"; got != want {
		t.Errorf("rendered %s, want %s", got, want)
	}
}
