package cloudinit_test

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/cloudinit"
	"github.com/rawkode/rawkode-cloud/internal/golden"
)

func iface() cloudinit.Interface {
	return cloudinit.Interface{MAC: "02:00:0A:0A:00:03", Address: netip.MustParsePrefix("10.10.0.3/24"),
		Gateway: netip.MustParseAddr("10.10.0.1"), Nameservers: []netip.Addr{netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("8.8.8.8")}}
}

// cloud-init's own network-state parser (the Python module the cloud-init
// package installs, the same 22.4 as Debian 12's image) reads the config
// and renders it for systemd-networkd, which is what the VM will run.
func TestNetworkConfigParsesWithCloudInit(t *testing.T) {
	t.Parallel()
	data, err := cloudinit.NetworkConfig(iface())
	if err != nil {
		t.Fatal(err)
	}
	golden.Compare(t, "testdata/network-config.yaml", data)
	bin, err := exec.LookPath("cloud-init")
	if err != nil {
		t.Skip("cloud-init is not installed (CI installs it: apt-get install -y cloud-init)")
	}
	// cloud-init's Python, not whichever python3 is first on PATH.
	head, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(head), "\n")
	python := strings.Fields(strings.TrimPrefix(first, "#!"))[0]
	file := filepath.Join(t.TempDir(), "network-config")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	const script = `
import sys, yaml
from cloudinit.net import network_state
ns = network_state.parse_net_config_data(yaml.safe_load(open(sys.argv[1])), skip_broken=False)
for i in ns.iter_interfaces():
    for s in i["subnets"]:
        print(i["name"], i["mac_address"], s["type"], s["address"], s.get("prefix") or s.get("netmask"))
for r in ns.iter_routes():
    print("route", r)
print("dns", " ".join(ns.dns_nameservers))
`
	out, err := exec.Command(python, "-c", script, file).CombinedOutput()
	if err != nil {
		t.Fatalf("cloud-init could not parse network-config: %v\n%s", err, out)
	}
	got := string(out)
	for _, want := range []string{"eth0 02:00:0a:0a:00:03 static 10.10.0.3", "dns 1.1.1.1 8.8.8.8"} {
		if !strings.Contains(got, want) {
			t.Errorf("cloud-init's reading lacks %q:\n%s", want, got)
		}
	}
}

func TestUserDataNeedsNameAndUser(t *testing.T) {
	t.Parallel()
	if _, err := cloudinit.UserData(cloudinit.VM{Hostname: "x"}); err == nil {
		t.Error("a VM without admin user was accepted")
	}
	if _, err := cloudinit.NetworkConfig(cloudinit.Interface{}); err == nil {
		t.Error("an empty interface was accepted")
	}
}
