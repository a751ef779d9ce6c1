package sandbox

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/cidata"
	kubeemulator "github.com/rawkode/rawkode-cloud/internal/kube/emulator"
	"github.com/rawkode/rawkode-cloud/internal/provision"
	pveemu "github.com/rawkode/rawkode-cloud/internal/proxmox/emulator"
	"github.com/rawkode/rawkode-cloud/internal/proxmoxhost"
	"github.com/rawkode/rawkode-cloud/internal/proxmoxvms"
	"github.com/rawkode/rawkode-cloud/internal/talos"
	"github.com/rawkode/rawkode-cloud/internal/teleportvm"
)

// The proxmox topology's VMs in the sandbox: when the emulated Proxmox VE
// starts a VM, the sandbox plays its first boot from what the VM really
// boots with. The Teleport VM installs Teleport and leaves its
// provisioner's one-hour identity in tmpfs (the sandbox's Teleport emulator
// stands in for the VM's Teleport); a Talos VM reads its machine config from
// the user-data of its own cidata ISO and comes up configured as an
// emulated Talos node at its internal address. The HAProxy VM only boots.
//
// The CLI reaches the Talos VMs the way it does on a real host: through the
// host's operator-only port forwards (provision.OperatorForwards), which
// dial routes from the host's public address to the node.

// Realistic first-boot durations of the VMs (before the speed applies).
const (
	teleportFirstBoot = 2 * time.Minute  // apt install teleport, start, tctl
	talosVMBoot       = 45 * time.Second // the nocloud image boots, reads cidata
)

// vmPower follows a VM of the host at hostIP starting or stopping.
func (s *Sandbox) vmPower(hostIP string, g pveemu.Guest, on bool) {
	if !on {
		s.stopVM(hostIP, g.VMID)
		return
	}
	tags := strings.FieldsFunc(g.Config["tags"], func(r rune) bool { return r == ';' || r == ',' })
	cluster := ""
	for _, t := range tags {
		if c, ok := strings.CutPrefix(t, "cluster-"); ok {
			cluster = c
		}
	}
	switch {
	case hasTag(tags, proxmoxvms.RoleTeleport):
		s.after(s.Scaled(teleportFirstBoot), func() { s.bootTeleportVM(hostIP, g) })
	case hasTag(tags, proxmoxvms.RoleTalos):
		s.bootTalosVM(hostIP, cluster, g)
	}
}

func hasTag(tags []string, want string) bool {
	for _, t := range tags {
		if t == want {
			return true
		}
	}
	return false
}

// bootTeleportVM is the Teleport VM's first boot as far as the CLI sees
// it: the provisioner user exists and its identity waits in tmpfs.
func (s *Sandbox) bootTeleportVM(hostIP string, g pveemu.Guest) {
	h := s.Host(hostIP)
	if h == nil {
		return
	}
	id, err := s.Teleport.IdentityFor(teleportvm.ProvisionerUser, teleportvm.IdentityTTL)
	if err != nil {
		return
	}
	s.Teleport.SeedUser(teleportvm.ProvisionerUser)
	h.WriteGuestFile(g.VMID, teleportvm.IdentityPath, id)
	s.mu.Lock()
	if s.teleportVMs == nil {
		s.teleportVMs = map[string]int{}
	}
	s.teleportVMs[hostIP] = g.VMID
	s.mu.Unlock()
	s.tl.add("proxmox: teleport VM first boot done", hostIP, time.Now())
	s.serveApps(hostIP, g)
}

// bootTalosVM starts the emulated Talos node of a Talos VM, configured from
// its cidata ISO; without a readable config it boots into maintenance mode.
func (s *Sandbox) bootTalosVM(hostIP, cluster string, g pveemu.Guest) {
	var cfg []byte
	if label, files, err := cidata.Read(g.CIData); err == nil && strings.EqualFold(label, cidata.LabelCloudInit) {
		cfg, _ = cidata.Lookup(files, "user-data")
	}
	vms, err := proxmoxvms.Plan(cluster, provision.ProxmoxLayout())
	if err != nil {
		return
	}
	var ip netip.Addr
	for _, vm := range vms {
		if vm.VMID == g.VMID {
			ip = vm.Address.Addr()
		}
	}
	if !ip.IsValid() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	services := map[string]time.Duration{}
	for k, v := range s.profile.Services {
		services[k] = s.Scaled(v)
	}
	key := ip.String()
	node, err := talos.NewNode(talos.NodeOptions{
		PublicIP: ip, OperatorIP: OperatorIP, InstallConfig: cfg,
		BootDelay: s.Scaled(talosVMBoot), RebootDelay: s.Scaled(s.profile.Reboot),
		EtcdReadyDelay: s.Scaled(s.profile.EtcdReady), ServiceDelays: services,
		MaintenanceLinger: s.Scaled(s.profile.MaintenanceLinger),
		Faults:            s.faults.ForNode(g.Name), NoEvents: s.pollOnly,
		OnEvent:       func(name string, at time.Time) { s.tl.add("talos: "+name, key, at) },
		Peers:         s.Nodes,
		RewriteConfig: s.rewrite,
		Kube:          func(cluster string) *kubeemulator.Server { return s.kubeFor(cluster, key) },
		FetchManifest: fetchManifest,
		ApplyBackoff:  kubeemulator.TalosBackoff.Scaled(s.speed),
	})
	if err != nil {
		return
	}
	s.nodeCounters = append(s.nodeCounters, node.Counters())
	node.OnConfigured(func(cfg []byte) { s.startAgent(key, node, cfg) })
	s.nodes[key] = node
	if s.vmNodes[hostIP] == nil {
		s.vmNodes[hostIP] = map[int]string{}
	}
	s.vmNodes[hostIP][g.VMID] = key
}

// stopVM takes a stopped VM's node (and its kube agent) away.
func (s *Sandbox) stopVM(hostIP string, vmid int) {
	s.mu.Lock()
	key, ok := s.vmNodes[hostIP][vmid]
	delete(s.vmNodes[hostIP], vmid)
	tv, isTeleport := s.teleportVMs[hostIP]
	isTeleport = isTeleport && tv == vmid
	if isTeleport {
		delete(s.teleportVMs, hostIP)
	}
	s.mu.Unlock()
	if isTeleport {
		s.dropTeleportVM(hostIP)
	}
	if ok {
		s.dropNode(key)
	}
}

// hostForwarding is what a host's user data set up for the operator:
// forwards whose DNAT matches sources in the datacenter IP set ipset.
type hostForwarding struct {
	ipset    string
	forwards []proxmoxhost.OperatorForward
}

// forwarded dials through a host's operator-only forwards: the only way
// from here to a Talos VM. Nil when addr is not such a forward. As on a
// real host, a forward exists only if the host's user data installed it,
// and it matches only while the operator's address is in the IP set
// pve-firewall materialises (datacenter firewall on): otherwise the packet
// meets the host's own input policy, DROP, and the dial times out.
func (s *Sandbox) forwarded(ctx context.Context, addr string) (net.Conn, bool, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, false, nil
	}
	h := s.Host(ap.Addr().String())
	if h == nil {
		return nil, false, nil
	}
	s.mu.Lock()
	fwd := s.hostForwards[ap.Addr().String()]
	s.mu.Unlock()
	for _, f := range fwd.forwards {
		if f.Port != int(ap.Port()) {
			continue
		}
		if !h.IPSetAdmits(fwd.ipset, OperatorIP) {
			return nil, true, s.dropped(ctx)
		}
		n := s.Node(f.To.Addr().String())
		if n == nil {
			return nil, true, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
		}
		c, err := n.Dialer()(ctx, f.To.String())
		return c, true, err
	}
	return nil, false, nil
}

// proxmoxVMs lists a host's VMs as the inventory shows them.
func proxmoxVMs(snap pveemu.Snapshot) []map[string]any {
	var out []map[string]any
	for _, v := range snap.VMs {
		ip := ""
		for _, t := range v.Tags {
			if c, ok := strings.CutPrefix(t, "cluster-"); ok {
				if vms, err := proxmoxvms.Plan(c, provision.ProxmoxLayout()); err == nil {
					for _, vm := range vms {
						if vm.VMID == v.VMID {
							ip = vm.Address.Addr().String()
						}
					}
				}
			}
		}
		status := "stopped"
		if v.Running {
			status = "running"
		}
		out = append(out, map[string]any{"name": v.Name, "vmid": v.VMID, "ip": ip, "status": status, "tags": v.Tags})
	}
	return out
}

// synGiveUp is how long Linux retries an unanswered SYN (tcp_syn_retries
// 6: about 127 s) before connect fails, before the speed applies.
const synGiveUp = 127 * time.Second

// dropped is a dial whose SYN a firewall drops: nothing answers, so it
// ends with the caller's deadline, or when the kernel gives up.
func (s *Sandbox) dropped(ctx context.Context) error {
	t := time.NewTimer(s.Scaled(synGiveUp))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return &net.OpError{Op: "dial", Net: "tcp", Err: ctx.Err()}
	case <-t.C:
		return &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ETIMEDOUT}
	}
}

// unresolved is where a name without a DNS record leads: a closed local
// port, so that the dial fails here and nothing leaves the machine.
const unresolved = "127.0.0.1:1"

// resolveTeleport is the sandbox's DNS for the proxmox topology's Teleport
// address (teleport.<domain>:443): the name resolves only through an A
// record in the emulated Cloudflare, and leads to the Teleport VM only if
// that record points at a Proxmox host, whose 443 goes to HAProxy and on,
// by SNI, to the Teleport VM. A run that never made the record cannot
// reach its Teleport, as on the internet.
func (s *Sandbox) resolveTeleport(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "443" {
		return unresolved
	}
	for _, r := range s.Cloudflare.Records() {
		if r.Type == "A" && strings.EqualFold(r.Name, host) && s.Host(r.Content) != nil {
			return s.Teleport.Addr()
		}
	}
	return unresolved
}

// agentReaches says whether the kube agent of the node at ip reaches a
// Teleport at proxy (its config's proxy_server). A Talos VM's agent reaches
// only the Teleport VM on its own host: teleport.<domain>:443 by an A
// record at that host (HAProxy passes 443 on by SNI), while that VM runs.
// The configured teleport-proxy, or any other address, leads elsewhere,
// and the agent never joins. A metal node's agent reaches what it is given
// (the sandbox has no other Teleport for it).
func (s *Sandbox) agentReaches(ip, proxy string) bool {
	s.mu.Lock()
	hostIP := ""
	for h, vms := range s.vmNodes {
		for _, k := range vms {
			if k == ip {
				hostIP = h
			}
		}
	}
	_, teleportUp := s.teleportVMs[hostIP]
	s.mu.Unlock()
	if hostIP == "" {
		return true
	}
	if !teleportUp {
		return false
	}
	host, port, err := net.SplitHostPort(proxy)
	if err != nil || port != "443" {
		return false
	}
	for _, r := range s.Cloudflare.Records() {
		if r.Type == "A" && strings.EqualFold(r.Name, host) && r.Content == hostIP {
			return true
		}
	}
	return false
}
