package proxmoxvms_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/golden"
	"github.com/rawkode/rawkode-cloud/internal/proxmoxvms"
	"github.com/rawkode/rawkode-cloud/internal/teleportvm"
)

func layout(t *testing.T) proxmoxvms.Layout {
	t.Helper()
	l, err := proxmoxvms.NewLayout(netip.MustParsePrefix("10.10.0.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The plan is the document's architecture diagram; pinned as a table.
func TestPlanIsTheDocumentsLayout(t *testing.T) {
	t.Parallel()
	vms, err := proxmoxvms.Plan("sandbox", layout(t))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, vm := range vms {
		fmt.Fprintf(&b, "%-14s %d %-8s %dc %5dM %2dG cpu=%s %-14s %s %s tags=%s\n", vm.Name, vm.VMID, vm.Role, vm.Cores, vm.MemoryMiB,
			vm.DiskGiB, vm.CPU, vm.Address, vm.MAC, vm.Image, strings.Join(vm.Tags, ";"))
	}
	golden.Compare(t, "testdata/plan.txt", []byte(b.String()))
	l := layout(t)
	if l.Host.String() != "10.10.0.1" || l.APIVIP.String() != "10.10.0.20" || l.GatewayVIP.String() != "10.10.0.30" {
		t.Errorf("layout %+v", l)
	}
	for _, bad := range []string{"10.10.0.0/25", "fd00::/64"} {
		if _, err := proxmoxvms.NewLayout(netip.MustParsePrefix(bad)); err == nil {
			t.Errorf("network %s accepted", bad)
		}
	}
	if _, err := proxmoxvms.Plan("Bad_Name", l); err == nil {
		t.Error("bad cluster name accepted")
	}
}

func input(t *testing.T) proxmoxvms.Input {
	t.Helper()
	initial, err := os.ReadFile("testdata/base-controlplane.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lockdown, err := os.ReadFile("testdata/base-controlplane-lockdown.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return proxmoxvms.Input{Cluster: "sandbox", Domain: "example.com", Layout: layout(t),
		Teleport: teleportvm.Config{GitHubOrg: "example-org", GitHubTeam: "platform-admins", GitHubClientID: "Iv1.0123",
			GitHubClientSecret: "sandbox-github-client-secret-000"},
		Talos: func(proxmoxvms.VM) ([]byte, []byte, error) { return initial, lockdown, nil }}
}

func TestRenderWritesWhatPlanPromises(t *testing.T) {
	t.Parallel()
	files, err := proxmoxvms.Render(input(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, fmt.Sprintf("%s secret=%v", f.Name, f.Secret))
		if !f.Secret && bytes.Contains(f.Data, []byte("sandbox-github-client-secret")) {
			t.Errorf("%s is not marked secret but holds the GitHub client secret", f.Name)
		}
		if f.Secret != (strings.HasPrefix(f.Name, "sandbox-cp-") || f.Name == "github-connector.yaml") {
			t.Errorf("%s: secret=%v", f.Name, f.Secret)
		}
	}
	golden.Compare(t, "testdata/render-files.txt", []byte(strings.Join(names, "\n")+"\n"))
}

func TestEveryVMBootsFromACidataISO(t *testing.T) {
	t.Parallel()
	in := input(t)
	vms, _ := proxmoxvms.Plan(in.Cluster, in.Layout)
	boots, err := proxmoxvms.Boots(in, vms)
	if err != nil {
		t.Fatal(err)
	}
	if len(boots) != len(vms) {
		t.Fatalf("%d boot volumes for %d VMs", len(boots), len(vms))
	}
	for _, b := range boots {
		iso, err := b.ISO()
		if err != nil {
			t.Fatalf("%s: %v", b.VM.Name, err)
		}
		if string(iso[0x8001:0x8006]) != "CD001" || !bytes.HasPrefix(iso[0x8028:], []byte("cidata ")) {
			t.Errorf("%s: not a cidata ISO 9660 volume", b.VM.Name)
		}
		if b.Secret != (b.VM.Role == proxmoxvms.RoleTalos) {
			t.Errorf("%s: secret=%v", b.VM.Name, b.Secret)
		}
	}
}
