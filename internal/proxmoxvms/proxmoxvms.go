// Package proxmoxvms is the plan of the VMs the Proxmox topology runs on its
// host, in one place: names, VM IDs, sizes, addresses, MACs and tags (the
// second design document's architecture), and the files each VM boots with.
//
//	vmbr1 (default 10.10.0.0/24)
//	  .1   the Proxmox host: NAT gateway, iSCSI target
//	  .2   teleport             2 vCPU, 2 GB, 20 GB   (internal only)
//	  .3   haproxy              1 vCPU, 2 GB,  8 GB   (SNI router)
//	  .10  <cluster>-cp-1       3 vCPU, 8 GB, 10 GB   Talos control planes,
//	  .11  <cluster>-cp-2                              CPU type host (the
//	  .12  <cluster>-cp-3                              x86-64-v2 lesson)
//	  .20  Kubernetes API VIP, shared by the control planes
//	  .30  Cilium gateway VIP (L2), where *.apps.<domain> lands
//
// The public address stays on the host, which forwards 80/443 to the
// HAProxy VM and 3023/3024 to the Teleport VM (DNAT). The document also
// gives the HAProxy VM the public IP on vmbr0; on Elastic Metal a second
// public address is a paid failover IP bound to a virtual MAC, and the
// host's own address is already the one the DNS names point at, so one
// address, forwarded, is simpler and keeps every VM off vmbr0. DNAT keeps
// the client's source address, so HAProxy and Teleport still see who
// connects.
package proxmoxvms

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"regexp"
)

// Roles of the VMs.
const (
	RoleHAProxy  = "haproxy"
	RoleTeleport = "teleport"
	RoleTalos    = "talos"
)

// Tags every VM carries, so destroy and status find them by cluster without
// local state (Proxmox tags: lower case, digits, '-', '_', '.', '+').
const TagManaged = "rawkode-cloud"

// ClusterTag is the tag naming the VM's cluster.
func ClusterTag(cluster string) string { return "cluster-" + cluster }

// ControlPlanes is how many Talos VMs the topology runs.
const ControlPlanes = 3

// Image kinds the VMs boot from.
const (
	ImageDebian = "debian-12-genericcloud"
	ImageTalos  = "talos-nocloud"
)

// VM is one planned VM.
type VM struct {
	Name      string
	VMID      int
	Role      string
	Cores     int
	MemoryMiB int
	DiskGiB   int
	// CPU is the QEMU CPU type: host everywhere, because Talos and
	// talosctl need x86-64-v2 and the default kvm64 lacks it.
	CPU     string
	Address netip.Prefix
	MAC     string
	Tags    []string
	Image   string
}

// Layout is every address on the internal bridge.
type Layout struct {
	Network    netip.Prefix
	Host       netip.Addr
	Teleport   netip.Addr
	HAProxy    netip.Addr
	APIVIP     netip.Addr
	GatewayVIP netip.Addr
	Nodes      []netip.Addr
}

var reCluster = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$`)

// NewLayout places everything on network, which must be an IPv4 /24 or
// larger (the document's offsets go up to .30).
func NewLayout(network netip.Prefix) (Layout, error) {
	if !network.IsValid() || !network.Addr().Is4() || network.Bits() > 24 {
		return Layout{}, fmt.Errorf("internal network %s: want an IPv4 network of /24 or larger", network)
	}
	n := network.Masked()
	at := func(off int) netip.Addr {
		a := n.Addr().As4()
		a[3] += byte(off)
		return netip.AddrFrom4(a)
	}
	l := Layout{Network: n, Host: at(1), Teleport: at(2), HAProxy: at(3), APIVIP: at(20), GatewayVIP: at(30)}
	for i := range ControlPlanes {
		l.Nodes = append(l.Nodes, at(10+i))
	}
	return l, nil
}

// Plan lists the VMs of cluster on layout, in the order they are created.
func Plan(cluster string, l Layout) ([]VM, error) {
	if !reCluster.MatchString(cluster) {
		return nil, fmt.Errorf("cluster name %q is not usable in VM names and tags", cluster)
	}
	bits := l.Network.Bits()
	base := []string{TagManaged, ClusterTag(cluster)}
	tags := func(role string) []string { return append(append([]string{}, base...), role) }
	vms := []VM{
		{Name: "haproxy", VMID: 100, Role: RoleHAProxy, Cores: 1, MemoryMiB: 2048, DiskGiB: 8, Image: ImageDebian,
			Address: netip.PrefixFrom(l.HAProxy, bits)},
		{Name: "teleport", VMID: 101, Role: RoleTeleport, Cores: 2, MemoryMiB: 2048, DiskGiB: 20, Image: ImageDebian,
			Address: netip.PrefixFrom(l.Teleport, bits)},
	}
	for i, a := range l.Nodes {
		vms = append(vms, VM{Name: fmt.Sprintf("%s-cp-%d", cluster, i+1), VMID: 110 + i, Role: RoleTalos,
			Cores: 3, MemoryMiB: 8192, DiskGiB: 10, Image: ImageTalos, Address: netip.PrefixFrom(a, bits)})
	}
	for i := range vms {
		vms[i].CPU = "host"
		vms[i].Tags = tags(vms[i].Role)
		vms[i].MAC = MAC(cluster, vms[i].Name)
	}
	return vms, nil
}

// MAC is a stable, locally administered unicast MAC for a VM: the configs
// find their NIC by it, and a rebuilt VM keeps it.
func MAC(cluster, vm string) string {
	sum := sha256.Sum256([]byte(cluster + "/" + vm))
	return fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", sum[0], sum[1], sum[2], sum[3], sum[4])
}
