package provision

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/proxmoxhost"
	"github.com/rawkode/rawkode-cloud/internal/proxmoxvms"
	"github.com/rawkode/rawkode-cloud/internal/talos"
	"github.com/rawkode/rawkode-cloud/internal/teleport"
	"github.com/rawkode/rawkode-cloud/internal/teleportvm"
)

// The proxmox topology's VMs, once the host is ready (proxmox.go): the
// Talos configs are rendered first (they go onto each Talos VM's cidata
// ISO), then every VM is created and started, the Teleport VM's one-hour
// provisioner identity is collected through the guest agent and used to
// give that Teleport its GitHub connector, and the Talos nodes, which boot
// configured, are waited for over mTLS. From there on the shared phases
// (bootstrap, verify, lockdown) run as on metal.
//
// How the operator reaches the Talos VMs: they live on vmbr1 behind the
// host, so the host forwards one public port per node and API to them
// (OperatorForwards, installed by the host's user data), for sources in
// the datacenter IP set ProxmoxOperatorIPSet only; the CLI puts its /32
// there through the API for the run (proxmox.go, firewall) and takes it
// out at lockdown. The CLI dials a node's internal address and
// forwardDialer sends it to the host's port. The node's own firewall
// admits the operator (DNAT keeps the source address) until lockdown,
// which is then proven closed through the same forward.

// OperatorForward is one of the host's operator-only port forwards.
type OperatorForward = proxmoxhost.OperatorForward

// OperatorForwards are the forwards that reach the Talos VMs: 50000+i to
// node i's Talos API, 6443+i to its Kubernetes API.
func OperatorForwards(l proxmoxvms.Layout) []OperatorForward {
	var out []OperatorForward
	for i, a := range l.Nodes {
		out = append(out,
			OperatorForward{Port: talos.ApidPort + i, To: netip.AddrPortFrom(a, talos.ApidPort)},
			OperatorForward{Port: machineconfig.KubernetesAPIPort + i, To: netip.AddrPortFrom(a, machineconfig.KubernetesAPIPort)})
	}
	return out
}

// forwardDialer sends a dial to a Talos VM's internal address to the
// host's forwarded port; anything else goes to base unchanged.
func forwardDialer(hostIP string, fw []OperatorForward, base talos.Dialer) talos.Dialer {
	to := map[netip.AddrPort]int{}
	for _, f := range fw {
		to[f.To] = f.Port
	}
	return func(ctx context.Context, addr string) (net.Conn, error) {
		if ap, err := netip.ParseAddrPort(addr); err == nil {
			if port, ok := to[ap]; ok {
				addr = net.JoinHostPort(hostIP, strconv.Itoa(port))
			}
		}
		if base != nil {
			return base(ctx, addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

// vmConfigs renders every Talos VM's configs (phase 4's work): the
// initial one goes onto the VM's cidata ISO (the VM's own documents are
// added there), the lockdown one is kept with them for phase 6.
func (h *proxmoxHost) vmConfigs(bundle *secrets.Bundle) error {
	p := h.p
	base := p.machineInput(p.bootstrapNode(), bundle, nil, nil)
	in, talosconfig := vmInput(p.cfg, base)
	vms, err := proxmoxvms.Plan(in.Cluster, in.Layout)
	if err != nil {
		return err
	}
	i := 0
	for _, vm := range vms {
		if vm.Role != proxmoxvms.RoleTalos {
			continue
		}
		if i >= len(p.nodes) || p.nodes[i].Name != vm.Name {
			return fmt.Errorf("the proxmox topology's nodes do not match its VM plan (%s)", vm.Name)
		}
		n := p.nodes[i]
		initial, lockdown, err := in.Talos(vm)
		if err != nil {
			return err
		}
		if n.lockdown, err = proxmoxvms.TalosConfig(in, vm, lockdown); err != nil {
			return err
		}
		n.config = initial
		i++
	}
	// The talosconfig is the cluster's, whichever node it came with.
	p.talosconfig = *talosconfig
	h.vmInput = in
	return nil
}

// createVMs is the topology's phase 2 after the host: the HAProxy and
// Teleport VMs created and started (each undo pushed right after its
// create), the Teleport VM given its GitHub connector and made the run's
// Teleport (useVMTeleport), then the kube agent's join token minted on it
// and the Talos configs rendered naming it (phase 4's work, needed now:
// the configs go onto the ISOs), and the Talos VMs created and up with
// their configs.
func (h *proxmoxHost) createVMs(ctx context.Context, r *pipeline.Run, nodes []*Node) error {
	p := h.p
	pve, ok := h.api.(proxmoxvms.Node)
	if !ok {
		return errors.New("the Proxmox client cannot manage VMs")
	}
	factory, err := p.opts.Factory.imageFactoryClient(p.cfg)
	if err != nil {
		return err
	}
	h.build = proxmoxvms.Build{PVE: pve, Factory: factory, Undo: r.Undo, Bridge: ProxmoxBridge,
		ImageStorage: "local", DiskStorage: hostOptions(p.cfg).WithDefaults().ZFSPool,
		TalosVersion: p.cfg.Get(config.TalosVersion), Poll: p.cfg.Duration(config.ProxmoxHostInterval)}
	// The service VMs need nothing of the Talos configs.
	svc := VMInput(p.cfg, machineconfig.Input{})
	w := r.Wait("HAProxy and Teleport VMs created and the Teleport VM's first boot", p.cfg.Duration(config.ProxmoxHostTimeout), p.cfg.Duration(config.ProxmoxHostInterval))
	wctx, cancel := w.Context(ctx)
	defer cancel()
	res, err := h.build.CreateServices(wctx, svc)
	if err != nil {
		return fmt.Errorf("create the VMs: %w", err)
	}
	w.Done()
	p.opts.Redactor.Add(string(res.TeleportIdentity))
	// The CLI reaches the Teleport VM by its public name, through HAProxy.
	if _, err := p.dnsRecords.Get(ctx, r); err != nil {
		return err
	}
	if err := h.teleportSSO(ctx, r, svc, res.TeleportIdentity); err != nil {
		return err
	}
	if err := h.hostNodeToken(ctx, r); err != nil {
		return err
	}
	h.useVMTeleport(r)
	if _, err := p.prep.Get(ctx, r); err != nil {
		return err
	}
	in := h.vmInput
	in.Talos = func(vm proxmoxvms.VM) ([]byte, []byte, error) {
		for _, n := range nodes {
			if n.Name == vm.Name {
				return n.config, n.lockdown, nil
			}
		}
		return nil, nil, fmt.Errorf("no node for VM %s", vm.Name)
	}
	tw := r.Wait("Talos VMs created", p.cfg.Duration(config.ProxmoxHostTimeout), p.cfg.Duration(config.ProxmoxHostInterval))
	twctx, tcancel := tw.Context(ctx)
	defer tcancel()
	if err := h.build.CreateTalos(twctx, in, res); err != nil {
		return fmt.Errorf("create the VMs: %w", err)
	}
	tw.Done()
	h.vms = res.VMs
	names := make([]string, 0, len(res.VMs))
	for _, vm := range res.VMs {
		names = append(names, fmt.Sprintf("%s (%d, %s)", vm.Name, vm.VMID, vm.Address.Addr()))
	}
	r.Info("VMs created and started from their cidata ISOs", map[string]any{"vms": names, "talos_schematic": res.TalosSchematic})
	// The nodes booted configured: the first thing they serve is mTLS.
	return eachNode(nodes, func(n *Node) error {
		ip := n.IP()
		mw := r.Wait("Talos API over mTLS on "+n.Name+" ("+ip+", through the host's forward)", p.timeout(config.TalosMTLSTimeout), p.cfg.Duration(config.TalosMTLSInterval))
		mctx, mcancel := mw.Context(ctx)
		defer mcancel()
		if err := p.talos.WaitMTLS(mctx, ip, p.talosconfig, mw.Options()); err != nil {
			return err
		}
		mw.Done()
		return nil
	})
}

// useVMTeleport makes the Teleport VM the run's Teleport: the cluster's
// kube agent joins it (the configs name teleport.<domain>:443), so its
// join tokens are minted, renewed, checked and deleted there, and phase 6
// waits for the agent there. The agent runs the VM's Teleport version
// unless teleport-agent-version says otherwise.
func (h *proxmoxHost) useVMTeleport(r *pipeline.Run) {
	p := h.p
	if p.tp != nil && p.tp != Teleport(h.vmTeleport) {
		_ = p.tp.Close()
	}
	p.tp = h.vmTeleport
	if p.agentVersion = p.cfg.Get(config.TeleportAgentVersion); p.agentVersion == "" {
		p.agentVersion = strings.TrimPrefix(h.vmTeleport.ServerVersion(), "v")
	}
	r.Info("the cluster's kube agent joins the Teleport VM", map[string]any{"proxy": p.kubeAgentProxy(), "agent_version": p.agentVersion})
}

// teleportSSO gives the topology's own Teleport its GitHub connector with
// the provisioner's one-hour identity: the client secret travels only over
// Teleport's mTLS API, never in a VM's user data.
func (h *proxmoxHost) teleportSSO(ctx context.Context, r *pipeline.Run, in proxmoxvms.Input, identity []byte) error {
	p := h.p
	tc := in.TeleportConfig()
	proxy := tc.PublicHost() + ":443"
	if m := p.opts.Factory.TeleportAddr; m != nil {
		proxy = m(proxy)
	}
	c, err := teleport.Connect(ctx, teleport.Config{Proxy: proxy, IdentityContent: identity, Retry: p.opts.Factory.policy("teleport"),
		DialTimeout: p.opts.Factory.AttemptTimeout, AttemptTimeout: p.opts.Factory.AttemptTimeout,
		DialOpts: p.opts.Factory.Meter.DialOptions("teleport")})
	if err != nil {
		return fmt.Errorf("connect to the Teleport VM as %s: %w", teleportvm.ProvisionerUser, err)
	}
	h.vmTeleport = c
	conn, err := teleportvm.GitHubConnector(tc)
	if err != nil {
		return err
	}
	if err := c.UpsertGithubConnector(ctx, conn); err != nil {
		return err
	}
	r.Undo(pipeline.UndoStep{
		Resource: "Teleport GitHub connector " + teleportvm.ConnectorName + " on the Teleport VM",
		Command:  "tctl rm github/" + teleportvm.ConnectorName,
		Do:       func(ctx context.Context) error { return c.DeleteGithubConnector(ctx, teleportvm.ConnectorName) },
	})
	r.Info("GitHub SSO configured on the Teleport VM", map[string]any{"org": tc.GitHubOrg, "team": tc.GitHubTeam,
		"callback": tc.CallbackURL(), "role": teleportvm.InfraAdminRole})
	return nil
}

// removeTalosSeeds ejects and deletes the Talos VMs' cidata ISOs once the
// nodes run configured (they stored their configs on STATE).
func (h *proxmoxHost) removeTalosSeeds(ctx context.Context, r *pipeline.Run) error {
	if err := h.build.RemoveTalosSeeds(ctx, h.p.clusterName(), h.vms); err != nil {
		return fmt.Errorf("remove the Talos VMs' cidata ISOs: %w", err)
	}
	r.Info("the Talos VMs' cidata ISOs are ejected and deleted: the machine configs live only on the nodes now", nil)
	return nil
}

// dropProvisioner deletes the Teleport VM's provisioner user: its identity
// would expire within the hour anyway, but nothing should outlive the run.
func (h *proxmoxHost) dropProvisioner(ctx context.Context, r *pipeline.Run) {
	if h.vmTeleport == nil {
		return
	}
	h.dropHostNodeToken(ctx, r) // needs the provisioner's identity
	if err := h.vmTeleport.DeleteUser(ctx, teleportvm.ProvisionerUser); err != nil {
		r.Warn("could not delete the Teleport VM's provisioner user; its identity expires within the hour", map[string]any{"user": teleportvm.ProvisionerUser, "error": err.Error()})
		return
	}
	r.Info("the Teleport VM's provisioner user is deleted", map[string]any{"user": teleportvm.ProvisionerUser})
}
