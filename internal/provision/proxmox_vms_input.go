package provision

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/proxmoxvms"
	"github.com/rawkode/rawkode-cloud/internal/teleportvm"
)

// ProxmoxNetwork is the proxmox topology's internal network (vmbr1).
var ProxmoxNetwork = netip.MustParsePrefix("10.10.0.0/24")

// ProxmoxLayout places the host, the VMs and the VIPs on the internal network.
func ProxmoxLayout() proxmoxvms.Layout {
	l, err := proxmoxvms.NewLayout(ProxmoxNetwork)
	if err != nil {
		panic(err) // a constant network: cannot fail
	}
	return l
}

// VMInput is what the VMs' files are made of, shared by provision and
// `plan --render`. talos makes a Talos VM's configs from the cluster's
// machine-config input (base); the VM's own part is MachineInput's. Each
// VM's configs are generated once, however often they are asked for.
func VMInput(cfg *config.Config, base machineconfig.Input) proxmoxvms.Input {
	in, _ := vmInput(cfg, base)
	return in
}

// vmInput is VMInput, also returning where the cluster's talosconfig is
// kept once the first Talos VM's configs were generated.
func vmInput(cfg *config.Config, base machineconfig.Input) (proxmoxvms.Input, *[]byte) {
	var talosconfig []byte
	l := ProxmoxLayout()
	in := proxmoxvms.Input{
		Cluster: cfg.Get(config.ClusterName),
		Domain:  cfg.Get(config.Domain),
		Layout:  l,
		Teleport: teleportvm.Config{
			ACMEEmail: cfg.Get(config.ACMEEmail),
			GitHubOrg: cfg.Get(config.GitHubOrg), GitHubTeam: cfg.Get(config.GitHubTeam),
			GitHubClientID: cfg.Get(config.GitHubClientID), GitHubClientSecret: cfg.Get(config.GitHubClientSecret),
		},
	}
	base.ControlPlaneIPs, base.NodeIPs, base.HasWorkers, base.Worker = l.Nodes, l.Nodes, false, false
	var mu sync.Mutex
	made := map[string][2][]byte{}
	in.Talos = func(vm proxmoxvms.VM) ([]byte, []byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if c, ok := made[vm.Name]; ok {
			return c[0], c[1], nil
		}
		mi, err := proxmoxvms.MachineInput(base, vm, l)
		if err != nil {
			return nil, nil, err
		}
		res, err := machineconfig.Generate(mi)
		if err != nil {
			return nil, nil, fmt.Errorf("generate the Talos config of %s: %w", vm.Name, err)
		}
		made[vm.Name] = [2][]byte{res.ControlPlane, res.Lockdown}
		talosconfig = res.Talosconfig
		return res.ControlPlane, res.Lockdown, nil
	}
	return in, &talosconfig
}
