// Package talosvm turns a cluster's control-plane config into the config of
// each Talos VM of the Proxmox topology, and packs it on the VM's own
// cidata ISO, where Talos's nocloud platform reads it at first boot: the
// node comes up configured, with mTLS, and never waits in maintenance mode
// for an insecure apply.
//
// Per VM it adds Talos 1.12's network documents, checked by Talos's own
// validator: a link alias found by the VM's MAC (not by a guessed interface
// name), the static address and default route, the Kubernetes API VIP
// shared by the control planes (Layer2VIPConfig), and the resolvers. The
// hostname comes from a HostnameConfig that replaces the generated
// `auto: stable` one: setting machine.network.hostname next to it is the
// second design document's "static hostname is already set" failure, which
// the tests reproduce.
package talosvm

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/cel"
	"github.com/siderolabs/talos/pkg/machinery/cel/celenv"
	"github.com/siderolabs/talos/pkg/machinery/config/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/container"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/types/network"
	"github.com/siderolabs/talos/pkg/machinery/config/validation"
	"github.com/siderolabs/talos/pkg/machinery/nethelpers"

	"github.com/rawkode/rawkode-cloud/internal/cidata"
	"github.com/rawkode/rawkode-cloud/internal/cloudinit"
)

// LinkName is the alias every VM's one NIC gets.
const LinkName = "net0"

// Node is one Talos VM.
type Node struct {
	Name    string       // e.g. sandbox-cp-1; also the hostname
	MAC     string       // the MAC the CLI gives the VM's NIC
	Address netip.Prefix // e.g. 10.10.0.10/24
}

// Layout is the internal network the VMs share.
type Layout struct {
	Gateway     netip.Addr   // the host on the bridge, 10.10.0.1
	VIP         netip.Addr   // Kubernetes API VIP, 10.10.0.20
	Nameservers []netip.Addr // 1.1.1.1, 8.8.8.8
	Nodes       []Node       // every control plane
	// Ingress are internal addresses allowed to the gateway's 80/443 on
	// the nodes (the HAProxy VM).
	Ingress []netip.Addr
}

// NocloudMode is the validation mode of a VM booted from the nocloud disk
// image: it is already installed, so no install disk is required.
type NocloudMode struct{}

func (NocloudMode) String() string        { return "nocloud" }
func (NocloudMode) RequiresInstall() bool { return false }
func (NocloudMode) InContainer() bool     { return false }

func (l Layout) validate(i int) error {
	if i < 0 || i >= len(l.Nodes) {
		return fmt.Errorf("talos VM: no node %d in a layout of %d", i, len(l.Nodes))
	}
	if !l.Gateway.Is4() || !l.VIP.Is4() || len(l.Nameservers) == 0 {
		return fmt.Errorf("talos VM: the layout needs an IPv4 gateway, VIP and nameservers")
	}
	for _, n := range l.Nodes {
		if n.Name == "" || !n.Address.IsValid() || n.MAC == "" {
			return fmt.Errorf("talos VM %q: name, address and MAC are required", n.Name)
		}
		if !n.Address.Contains(l.Gateway) || !n.Address.Contains(l.VIP) {
			return fmt.Errorf("talos VM %s: gateway %s and VIP %s must be on %s", n.Name, l.Gateway, l.VIP, n.Address.Masked())
		}
		if n.Address.Addr() == l.VIP {
			return fmt.Errorf("talos VM %s: its address is the VIP", n.Name)
		}
	}
	return nil
}

// Config returns node i's machine config: base (a control-plane config,
// initial or lockdown) plus the node's own network documents, validated by
// Talos for the nocloud platform.
func Config(base []byte, l Layout, i int) ([]byte, error) {
	if err := l.validate(i); err != nil {
		return nil, err
	}
	node := l.Nodes[i]
	provider, err := configloader.NewFromBytes(base)
	if err != nil {
		return nil, fmt.Errorf("talos VM %s: read base config: %w", node.Name, err)
	}
	if v := provider.RawV1Alpha1(); v != nil && v.MachineConfig != nil && v.MachineConfig.MachineNetwork != nil && v.MachineConfig.MachineNetwork.NetworkHostname != "" {
		return nil, fmt.Errorf("talos VM %s: the base config sets machine.network.hostname, which conflicts with HostnameConfig", node.Name)
	}
	var docs []config.Document
	for _, d := range provider.Documents() {
		if d.Kind() == network.HostnameKind {
			continue // replaced by the node's own
		}
		docs = append(docs, d.Clone())
	}
	extra, err := nodeDocuments(l, node)
	if err != nil {
		return nil, fmt.Errorf("talos VM %s: %w", node.Name, err)
	}
	c, err := container.New(append(docs, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("talos VM %s: %w", node.Name, err)
	}
	if _, err := c.Validate(NocloudMode{}, validation.WithLocal()); err != nil {
		return nil, fmt.Errorf("talos VM %s: Talos refuses the config: %w", node.Name, err)
	}
	return c.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
}

func nodeDocuments(l Layout, n Node) ([]config.Document, error) {
	hostname := network.NewHostnameConfigV1Alpha1()
	hostname.ConfigHostname = n.Name

	alias := network.NewLinkAliasConfigV1Alpha1(LinkName)
	expr, err := cel.ParseBooleanExpression(fmt.Sprintf("mac(link.permanent_addr) == %q", strings.ToLower(n.MAC)), celenv.LinkLocator())
	if err != nil {
		return nil, fmt.Errorf("link selector: %w", err)
	}
	alias.Selector.Match = expr

	link := network.NewLinkConfigV1Alpha1(LinkName)
	link.LinkUp = boolPtr(true)
	link.LinkAddresses = []network.AddressConfig{{AddressAddress: n.Address}}
	link.LinkRoutes = []network.RouteConfig{{RouteGateway: network.Addr{Addr: l.Gateway}}}

	vip := network.NewLayer2VIPConfigV1Alpha1(l.VIP.String())
	vip.LinkName = LinkName

	resolver := network.NewResolverConfigV1Alpha1()
	for _, ns := range l.Nameservers {
		resolver.ResolverNameservers = append(resolver.ResolverNameservers, network.NameserverConfig{Address: network.Addr{Addr: ns}})
	}

	docs := []config.Document{hostname, alias, link, vip, resolver}
	docs = append(docs, firewall(l)...)
	return docs, nil
}

// firewall lets the control planes reach each other on every port (etcd,
// trustd, the Talos and Kubernetes APIs, kubelet, Cilium's health and
// tunnel) and the HAProxy VM reach the gateway; the generated default
// action stays "block" for everything else on the bridge.
func firewall(l Layout) []config.Document {
	var nodes []network.IngressRule
	for _, n := range l.Nodes {
		nodes = append(nodes, network.IngressRule{Subnet: netip.PrefixFrom(n.Address.Addr(), 32)})
	}
	all := network.PortRanges{{Lo: 1, Hi: 65535}}
	tcp := network.NewRuleConfigV1Alpha1()
	tcp.MetaName = "internal-nodes-tcp"
	tcp.PortSelector = network.RulePortSelector{Ports: all, Protocol: nethelpers.ProtocolTCP}
	tcp.Ingress = nodes
	udp := network.NewRuleConfigV1Alpha1()
	udp.MetaName = "internal-nodes-udp"
	udp.PortSelector = network.RulePortSelector{Ports: all, Protocol: nethelpers.ProtocolUDP}
	udp.Ingress = slices.Clone(nodes)
	docs := []config.Document{tcp, udp}
	if len(l.Ingress) > 0 {
		gw := network.NewRuleConfigV1Alpha1()
		gw.MetaName = "internal-gateway-ingress"
		gw.PortSelector = network.RulePortSelector{Ports: network.PortRanges{{Lo: 80, Hi: 80}, {Lo: 443, Hi: 443}}, Protocol: nethelpers.ProtocolTCP}
		for _, a := range l.Ingress {
			gw.Ingress = append(gw.Ingress, network.IngressRule{Subnet: netip.PrefixFrom(a, 32)})
		}
		docs = append(docs, gw)
	}
	return docs
}

func boolPtr(b bool) *bool { return &b }

// ISO packs a node's config on its cidata volume: user-data is the machine
// config (Talos's nocloud platform takes it as is) and meta-data names the
// instance. There is no network-config: the machine config carries the
// network, and a second source could only disagree with it.
func ISO(machineConfig []byte, l Layout, i int, instanceID string) ([]byte, error) {
	if err := l.validate(i); err != nil {
		return nil, err
	}
	n := l.Nodes[i]
	return cidata.Build(cidata.LabelCloudInit, timeZero,
		cidata.File{Name: "user-data", Data: machineConfig},
		cidata.File{Name: "meta-data", Data: cloudinit.MetaData(instanceID, n.Name)},
	)
}

// timeZero leaves the ISO's dates unspecified, so the same config always
// gives the same image.
var timeZero = time.Time{}
