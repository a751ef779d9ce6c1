package machineconfig

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/config/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/container"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/types/network"
	"github.com/siderolabs/talos/pkg/machinery/nethelpers"
)

// Ports the firewall is about.
const (
	TalosAPIPort      = 50000
	TrustdPort        = 50001
	KubernetesAPIPort = 6443
	KubeletPort       = 10250
	EtcdClientPort    = 2379
	EtcdPeerPort      = 2380
	// VXLANPort carries pod traffic between nodes (flannel, and Cilium in
	// its default tunnel mode).
	VXLANPort = 8472
	// KubePrismPort is where every node's local API load balancer listens
	// (loopback only: no rule needed).
	KubePrismPort = 7445
)

// Names of the firewall rules. The operator rules exist only in the initial
// config; the cluster rules are in both.
const (
	RuleOperatorTalosAPI      = "operator-talos-api"
	RuleOperatorKubeAPI       = "operator-kube-api"
	RuleClusterKubernetesAPI  = "cluster-kube-api"
	RuleClusterKubeletMetrics = "cluster-kubelet"
	// Node-to-node rules: only with more than one node, from the other
	// nodes' /32s.
	RuleNodesEtcd     = "nodes-etcd"
	RuleNodesTrustd   = "nodes-trustd"
	RuleNodesTalosAPI = "nodes-talos-api"
	RuleNodesVXLAN    = "nodes-vxlan"
)

// firewallInput is what one node's firewall is made of.
type firewallInput struct {
	node          netip.Addr
	worker        bool
	controlPlanes []netip.Addr // every control plane, this node included if it is one
	nodes         []netip.Addr // every node, this one included
	pods          []netip.Prefix
	services      []netip.Prefix
	operator      netip.Addr // invalid: the lockdown config
}

// firewallDocuments returns the ingress firewall of the node.
//
// The default action is block: with accept, Talos turns every rule into a
// block list for its port, so an operator-only 6443 rule would also cut pods
// (the Teleport agent, CoreDNS) off the API server. With block, Talos itself
// still lets through loopback (the node talking to its own address),
// established connections and pod-to-pod traffic; pods reaching host ports
// (the API server behind the kubernetes Service, the kubelet for metrics)
// need the cluster rules below.
//
// A single node reaches etcd, trustd and its own APIs over loopback, so it
// needs nothing more. With several, each port another node must reach is
// opened to exactly the other nodes' /32s that need it: etcd (2379-2380)
// between control planes, trustd (50001) and the API server (6443) on the
// control planes from every node, apid (50000) between nodes (apid proxies
// talosctl to the others), the kubelet (10250) from the control planes, and
// VXLAN (udp/8472) for pod traffic between nodes.
func firewallDocuments(in firewallInput) []config.Document {
	action := network.NewDefaultActionConfigV1Alpha1()
	action.Ingress = nethelpers.DefaultActionBlock

	self := func(ip netip.Addr) netip.Prefix { return netip.PrefixFrom(ip, ip.BitLen()) }
	others := func(ips []netip.Addr) []netip.Prefix {
		var out []netip.Prefix
		for _, ip := range ips {
			if ip != in.node {
				out = append(out, self(ip))
			}
		}

		return out
	}
	nodeOnly := self(in.node)
	peers, peerCPs := others(in.nodes), others(in.controlPlanes)

	docs := []config.Document{action}

	if !in.worker {
		inCluster := append(append(append([]netip.Prefix{}, in.pods...), in.services...), nodeOnly)
		docs = append(docs, tcpRule(RuleClusterKubernetesAPI, KubernetesAPIPort, append(inCluster, peers...)...))
	}

	docs = append(docs, tcpRule(RuleClusterKubeletMetrics, KubeletPort, append(append(append([]netip.Prefix{}, in.pods...), nodeOnly), peerCPs...)...))

	if !in.worker && len(peerCPs) > 0 {
		docs = append(docs, portRule(RuleNodesEtcd, nethelpers.ProtocolTCP, EtcdClientPort, EtcdPeerPort, peerCPs...))
	}

	if !in.worker && len(peers) > 0 {
		docs = append(docs, tcpRule(RuleNodesTrustd, TrustdPort, peers...))
	}

	if len(peers) > 0 {
		docs = append(docs,
			tcpRule(RuleNodesTalosAPI, TalosAPIPort, peers...),
			portRule(RuleNodesVXLAN, nethelpers.ProtocolUDP, VXLANPort, VXLANPort, peers...),
		)
	}

	if in.operator.IsValid() {
		operatorOnly := self(in.operator)
		docs = append(docs, tcpRule(RuleOperatorTalosAPI, TalosAPIPort, operatorOnly))

		if !in.worker {
			docs = append(docs, tcpRule(RuleOperatorKubeAPI, KubernetesAPIPort, operatorOnly))
		}
	}

	return docs
}

func portRule(name string, proto nethelpers.Protocol, lo, hi uint16, subnets ...netip.Prefix) *network.RuleConfigV1Alpha1 {
	rule := network.NewRuleConfigV1Alpha1()
	rule.MetaName = name
	rule.PortSelector.Protocol = proto
	rule.PortSelector.Ports = network.PortRanges{{Lo: lo, Hi: hi}}

	for _, subnet := range subnets {
		rule.Ingress = append(rule.Ingress, network.IngressRule{Subnet: subnet})
	}

	return rule
}

func tcpRule(name string, port uint16, subnets ...netip.Prefix) *network.RuleConfigV1Alpha1 {
	return portRule(name, nethelpers.ProtocolTCP, port, port, subnets...)
}

// Firewall is the ingress firewall a machine config asks for.
type Firewall struct {
	// DefaultAction is "accept" or "block".
	DefaultAction string
	Rules         []FirewallRule
}

// FirewallRule is one opening: traffic to Ports from Subnets is accepted
// (under default action block).
type FirewallRule struct {
	Name     string
	Protocol string
	// Ports are inclusive ranges.
	Ports   [][2]uint16
	Subnets []netip.Prefix
	Except  []netip.Prefix
}

// Operator reports whether the rule is one of the temporary operator rules
// that the lockdown config drops.
func (r FirewallRule) Operator() bool {
	return r.Name == RuleOperatorTalosAPI || r.Name == RuleOperatorKubeAPI
}

// String renders the rule for `plan`, e.g.
// "operator-talos-api: tcp/50000 from 203.0.113.7/32".
func (r FirewallRule) String() string {
	ports := make([]string, 0, len(r.Ports))
	for _, p := range r.Ports {
		if p[0] == p[1] {
			ports = append(ports, fmt.Sprint(p[0]))
		} else {
			ports = append(ports, fmt.Sprintf("%d-%d", p[0], p[1]))
		}
	}

	subnets := make([]string, 0, len(r.Subnets))
	for _, s := range r.Subnets {
		subnets = append(subnets, s.String())
	}

	s := fmt.Sprintf("%s: %s/%s from %s", r.Name, r.Protocol, strings.Join(ports, ","), strings.Join(subnets, ", "))
	if len(r.Except) > 0 {
		except := make([]string, 0, len(r.Except))
		for _, e := range r.Except {
			except = append(except, e.String())
		}

		s += " except " + strings.Join(except, ", ")
	}

	return s
}

// FirewallRules describes the ingress firewall of a rendered machine config.
func FirewallRules(cfg []byte) (Firewall, error) {
	provider, err := configloader.NewFromBytes(cfg)
	if err != nil {
		return Firewall{}, fmt.Errorf("read firewall rules: %w", errUnreadableConfig)
	}

	return firewallOf(provider), nil
}

func firewallOf(cfg config.Config) Firewall {
	rules := cfg.NetworkRules()
	fw := Firewall{DefaultAction: rules.DefaultAction().String()}

	for _, r := range rules.Rules() {
		rule := FirewallRule{
			Protocol: r.Protocol().String(),
			Ports:    r.PortRanges(),
			Subnets:  r.Subnets(),
			Except:   r.ExceptSubnets(),
		}

		if named, ok := r.(config.NamedDocument); ok {
			rule.Name = named.Name()
		}

		fw.Rules = append(fw.Rules, rule)
	}

	return fw
}

// DropRule returns cfg without the firewall rule called name: a config
// broken on purpose, for proving that a cluster missing a rule fails.
func DropRule(cfg []byte, name string) ([]byte, error) {
	provider, err := configloader.NewFromBytes(cfg)
	if err != nil {
		return nil, fmt.Errorf("drop rule %s: %w", name, errUnreadableConfig)
	}

	var docs []config.Document

	for _, doc := range provider.Documents() {
		if named, ok := doc.(config.NamedDocument); ok && named.Name() == name {
			if _, isRule := doc.(*network.RuleConfigV1Alpha1); isRule {
				continue
			}
		}

		docs = append(docs, doc)
	}

	c, err := container.New(docs...)
	if err != nil {
		return nil, err
	}

	return c.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
}
