package talosvm_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/validation"

	"github.com/rawkode/rawkode-cloud/internal/golden"
	"github.com/rawkode/rawkode-cloud/internal/talosvm"
)

func layout() talosvm.Layout {
	l := talosvm.Layout{
		Gateway:     netip.MustParseAddr("10.10.0.1"),
		VIP:         netip.MustParseAddr("10.10.0.20"),
		Nameservers: []netip.Addr{netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("8.8.8.8")},
		Ingress:     []netip.Addr{netip.MustParseAddr("10.10.0.3")},
	}
	for i := range 3 {
		l.Nodes = append(l.Nodes, talosvm.Node{
			Name: fmt.Sprintf("sandbox-cp-%d", i+1), MAC: fmt.Sprintf("02:00:0A:0A:00:%02X", 10+i),
			Address: netip.MustParsePrefix(fmt.Sprintf("10.10.0.%d/24", 10+i)),
		})
	}
	return l
}

// base is a control-plane config rendered by internal/machineconfig (its
// golden file), so this package is tested on what it will really get.
func base(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/base-controlplane.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestEveryNodeConfigPassesTalosValidation(t *testing.T) {
	t.Parallel()
	l := layout()
	for i, n := range l.Nodes {
		cfg, err := talosvm.Config(base(t), l, i)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			golden.Compare(t, "testdata/sandbox-cp-1.yaml", cfg)
		}
		// Read back and validated again, as the node will.
		p, err := configloader.NewFromBytes(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Validate(talosvm.NocloudMode{}, validation.WithLocal(), validation.WithStrict()); err != nil {
			t.Errorf("%s: %v", n.Name, err)
		}
		s := string(cfg)
		for _, want := range []string{
			"kind: HostnameConfig\nhostname: " + n.Name,
			`mac(link.permanent_addr) == "` + strings.ToLower(n.MAC) + `"`,
			"address: " + n.Address.String(),
			"kind: Layer2VIPConfig\nname: 10.10.0.20\nlink: net0",
			"address: 1.1.1.1", "address: 8.8.8.8",
		} {
			if !strings.Contains(s, want) {
				t.Errorf("%s lacks %q", n.Name, want)
			}
		}
		if strings.Contains(s, "auto: stable") {
			t.Errorf("%s keeps the generated auto hostname", n.Name)
		}
	}
}

// The document's troubleshooting entry, reproduced: a static hostname in
// v1alpha1 next to HostnameConfig is refused by Talos — and by Config,
// before Talos could.
func TestHostnameConflictIsTheDocumentsFailure(t *testing.T) {
	t.Parallel()
	withHostname := bytes.Replace(base(t), []byte("    network: {}\n"), []byte("    network:\n        hostname: cp-1\n"), 1)
	p, err := configloader.NewFromBytes(withHostname)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Validate(talosvm.NocloudMode{}, validation.WithLocal()); err == nil || !strings.Contains(err.Error(), "static hostname is already set in v1alpha1 config") {
		t.Fatalf("Talos did not refuse the conflict: %v", err)
	}
	if _, err := talosvm.Config(withHostname, layout(), 0); err == nil || !strings.Contains(err.Error(), "conflicts with HostnameConfig") {
		t.Errorf("Config: %v", err)
	}
}

func TestLayoutIsChecked(t *testing.T) {
	t.Parallel()
	l := layout()
	l.VIP = netip.MustParseAddr("192.168.1.20")
	if _, err := talosvm.Config(base(t), l, 0); err == nil {
		t.Error("a VIP off the nodes' network was accepted")
	}
	l = layout()
	l.Nodes[1].Address = netip.MustParsePrefix("10.10.0.20/24")
	if _, err := talosvm.Config(base(t), l, 1); err == nil {
		t.Error("a node on the VIP was accepted")
	}
	if _, err := talosvm.Config(base(t), layout(), 3); err == nil {
		t.Error("node 3 of 3 was accepted")
	}
}

// The ISO carries the config byte for byte under the name Talos reads.
func TestISOCarriesTheConfig(t *testing.T) {
	t.Parallel()
	cfg, err := talosvm.Config(base(t), layout(), 1)
	if err != nil {
		t.Fatal(err)
	}
	img, err := talosvm.ISO(cfg, layout(), 1, "sandbox-cp-2-100")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := exec.LookPath("xorriso")
	if err != nil {
		t.Skip("xorriso is not installed (CI installs it)")
	}
	dir := t.TempDir()
	iso := filepath.Join(dir, "cidata.iso")
	if err := os.WriteFile(iso, img, 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "x")
	if res, err := exec.Command(bin, "-indev", iso, "-osirrox", "on", "-extract", "/", out).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, res)
	}
	got, err := os.ReadFile(filepath.Join(out, "user-data"))
	if err != nil || !bytes.Equal(got, cfg) {
		t.Errorf("user-data does not round-trip (%v)", err)
	}
	meta, _ := os.ReadFile(filepath.Join(out, "meta-data"))
	if string(meta) != "instance-id: sandbox-cp-2-100\nlocal-hostname: sandbox-cp-2\n" {
		t.Errorf("meta-data %q", meta)
	}
}
