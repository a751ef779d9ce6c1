package proxmoxvms_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config/configloader"

	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/proxmoxvms"
)

// The whole way a Talos VM's config is made, for all three: the cluster's
// generator with the VM's address and the VIP as endpoint, then the VM's
// own documents; every result passes Talos's validator (inside
// talosvm.Config) and points at the VIP.
func TestTalosVMConfigsFromTheGenerator(t *testing.T) {
	t.Parallel()
	bundle, err := machineconfig.NewSecrets("v1.12.4")
	if err != nil {
		t.Fatal(err)
	}
	in := input(t)
	base := machineconfig.Input{ClusterName: "sandbox", KubernetesVersion: "1.35.0", TalosVersion: "v1.12.4",
		OperatorIP: netip.MustParseAddr("198.51.100.7"), TeleportProxy: "teleport.example.com:443",
		TeleportJoinToken: "placeholder-token", Secrets: bundle}
	in.Talos = func(vm proxmoxvms.VM) ([]byte, []byte, error) {
		mi, err := proxmoxvms.MachineInput(base, vm, in.Layout)
		if err != nil {
			return nil, nil, err
		}
		res, err := machineconfig.Generate(mi)
		if err != nil {
			return nil, nil, err
		}
		return res.ControlPlane, res.Lockdown, nil
	}
	files, err := proxmoxvms.Render(in)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if !strings.HasPrefix(f.Name, "sandbox-cp-") {
			continue
		}
		n++
		p, err := configloader.NewFromBytes(f.Data)
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if got := p.Cluster().Endpoint().String(); got != "https://10.10.0.20:6443" {
			t.Errorf("%s: endpoint %s, want the VIP", f.Name, got)
		}
		if img := p.Machine().Install().Image(); !strings.Contains(img, "/installer/") {
			t.Errorf("%s: installer %s", f.Name, img)
		}
	}
	if n != 6 {
		t.Errorf("%d Talos VM configs, want 3 initial + 3 lockdown", n)
	}
}
