package proxmoxvms

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/cidata"
	"github.com/rawkode/rawkode-cloud/internal/cloudinit"
	"github.com/rawkode/rawkode-cloud/internal/haproxy"
	"github.com/rawkode/rawkode-cloud/internal/talosvm"
	"github.com/rawkode/rawkode-cloud/internal/teleportvm"
)

// Nameservers every VM resolves with (the document's choice).
var Nameservers = []netip.Addr{netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("8.8.8.8")}

// AdminUser exists on the Debian VMs and is a login of infra-admin.
const AdminUser = "deploy"

// Input is what the VMs' files are made of.
type Input struct {
	Cluster string
	Domain  string
	Layout  Layout
	// Teleport carries the SSO settings and logins; its Domain, NodeName
	// and ProxmoxURL are filled in here.
	Teleport teleportvm.Config
	// Talos returns a Talos VM's control-plane configs, initial (with the
	// operator rules) and lockdown (without), before the VM's own network
	// documents are added (MachineInput says what they are made of); nil
	// leaves the Talos VMs' files out.
	Talos func(vm VM) (initial, lockdown []byte, err error)
}

// File is one rendered file; Secret files are written 0600 and never shown.
type File struct {
	Name   string
	Data   []byte
	Secret bool
}

// Boot is a VM's first-boot volume content.
type Boot struct {
	VM    VM
	Files []cidata.File
	// Secret: the files carry key material (Talos machine configs).
	Secret bool
}

// ISO builds the VM's cidata volume.
func (b Boot) ISO() ([]byte, error) {
	return cidata.Build(cidata.LabelCloudInit, time.Time{}, b.Files...)
}

func (in Input) teleport() teleportvm.Config {
	c := in.Teleport
	c.Domain, c.NodeName = in.Domain, "teleport"
	c.ProxmoxURL = "https://" + in.Layout.Host.String() + ":8006"
	if len(c.Logins) == 0 {
		c.Logins = []string{"root", AdminUser}
	}
	return c
}

// TeleportConfig is the Teleport VM's configuration as the VM gets it.
func (in Input) TeleportConfig() teleportvm.Config { return in.teleport() }

func (in Input) haproxy() haproxy.Config {
	return haproxy.Config{
		Domain:       in.Domain,
		Teleport:     netip.AddrPortFrom(in.Layout.Teleport, teleportvm.WebPort),
		GatewayHTTPS: netip.AddrPortFrom(in.Layout.GatewayVIP, 443),
		GatewayHTTP:  netip.AddrPortFrom(in.Layout.GatewayVIP, 80),
	}
}

// talos is the Talos VMs' view of the network; the HAProxy VM may reach the
// gateway's 80/443 on them.
func (in Input) talos(vms []VM) talosvm.Layout {
	l := talosvm.Layout{Gateway: in.Layout.Host, VIP: in.Layout.APIVIP, Nameservers: Nameservers,
		Ingress: []netip.Addr{in.Layout.HAProxy}}
	for _, vm := range vms {
		if vm.Role == RoleTalos {
			l.Nodes = append(l.Nodes, talosvm.Node{Name: vm.Name, MAC: vm.MAC, Address: vm.Address})
		}
	}
	return l
}

// Boots renders every VM's first-boot files, in plan order.
func Boots(in Input, vms []VM) ([]Boot, error) {
	tl := in.talos(vms)
	var out []Boot
	talosIndex := 0
	for _, vm := range vms {
		instance := fmt.Sprintf("%s-%d", vm.Name, vm.VMID)
		switch vm.Role {
		case RoleHAProxy, RoleTeleport:
			base := cloudinit.VM{Hostname: vm.Name, AdminUser: AdminUser, Network: cloudinit.Interface{
				MAC: vm.MAC, Address: vm.Address, Gateway: in.Layout.Host, Nameservers: Nameservers}}
			var spec cloudinit.VM
			var err error
			if vm.Role == RoleHAProxy {
				spec, err = haproxy.VM(in.haproxy(), base)
			} else {
				spec, err = teleportvm.VM(in.teleport(), base)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", vm.Name, err)
			}
			ud, err := cloudinit.UserData(spec)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", vm.Name, err)
			}
			nc, err := cloudinit.NetworkConfig(spec.Network)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", vm.Name, err)
			}
			out = append(out, Boot{VM: vm, Files: []cidata.File{
				{Name: "user-data", Data: ud}, {Name: "meta-data", Data: cloudinit.MetaData(instance, vm.Name)},
				{Name: "network-config", Data: nc},
			}})
		case RoleTalos:
			if in.Talos == nil {
				talosIndex++
				continue
			}
			initial, _, err := in.Talos(vm)
			if err != nil {
				return nil, err
			}
			cfg, err := talosvm.Config(initial, tl, talosIndex)
			if err != nil {
				return nil, err
			}
			out = append(out, Boot{VM: vm, Secret: true, Files: []cidata.File{
				{Name: "user-data", Data: cfg}, {Name: "meta-data", Data: cloudinit.MetaData(instance, vm.Name)},
			}})
			talosIndex++
		}
	}
	return out, nil
}

// Render returns every file `plan --topology proxmox --render DIR` writes
// for the VMs: the HAProxy and Teleport configs, the Teleport resources as
// `tctl create` takes them, each VM's cloud-init data, and each Talos VM's
// config as <node>.yaml / <node>-lockdown.yaml.
func Render(in Input) ([]File, error) {
	vms, err := Plan(in.Cluster, in.Layout)
	if err != nil {
		return nil, err
	}
	cfg, err := haproxy.Render(in.haproxy())
	if err != nil {
		return nil, err
	}
	tc := in.teleport()
	tyaml, err := teleportvm.TeleportYAML(tc)
	if err != nil {
		return nil, err
	}
	conn, err := teleportvm.GitHubConnector(tc)
	if err != nil {
		return nil, err
	}
	connYAML, err := teleportvm.Marshal(conn)
	if err != nil {
		return nil, err
	}
	role, err := teleportvm.InfraAdmin(tc)
	if err != nil {
		return nil, err
	}
	roleYAML, err := teleportvm.Marshal(role)
	if err != nil {
		return nil, err
	}
	files := []File{
		{Name: "haproxy.cfg", Data: cfg},
		{Name: "teleport.yaml", Data: tyaml},
		{Name: "github-connector.yaml", Data: connYAML, Secret: true},
		{Name: "role-infra-admin.yaml", Data: roleYAML},
	}
	boots, err := Boots(in, vms)
	if err != nil {
		return nil, err
	}
	tl := in.talos(vms)
	i := 0
	for _, b := range boots {
		if b.VM.Role == RoleTalos {
			files = append(files, File{Name: b.VM.Name + ".yaml", Data: b.Files[0].Data, Secret: true})
			if _, lockdown, err := in.Talos(b.VM); err != nil {
				return nil, err
			} else if lockdown != nil {
				lock, err := talosvm.Config(lockdown, tl, i)
				if err != nil {
					return nil, err
				}
				files = append(files, File{Name: b.VM.Name + "-lockdown.yaml", Data: lock, Secret: true})
			}
			i++
			continue
		}
		for _, f := range b.Files {
			files = append(files, File{Name: b.VM.Name + "-" + f.Name + ".yaml", Data: f.Data})
		}
	}
	return files, nil
}

// TalosConfig adds the VM's own documents (network, VIP, hostname,
// internal firewall rules) to a config the cluster's generator made for vm:
// what the VM boots with (initial) and what lockdown applies later.
func TalosConfig(in Input, vm VM, cfg []byte) ([]byte, error) {
	vms, err := Plan(in.Cluster, in.Layout)
	if err != nil {
		return nil, err
	}
	i := 0
	for _, v := range vms {
		if v.Role != RoleTalos {
			continue
		}
		if v.Name == vm.Name {
			return talosvm.Config(cfg, in.talos(vms), i)
		}
		i++
	}
	return nil, fmt.Errorf("%s is not a Talos VM of cluster %s", vm.Name, in.Cluster)
}
