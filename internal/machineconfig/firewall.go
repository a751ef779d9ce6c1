package machineconfig

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/config/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/types/network"
	"github.com/siderolabs/talos/pkg/machinery/nethelpers"
)

// Ports the firewall is about.
const (
	TalosAPIPort      = 50000
	KubernetesAPIPort = 6443
	KubeletPort       = 10250
)

// Names of the firewall rules. The operator rules exist only in the initial
// config; the cluster rules are in both.
const (
	RuleOperatorTalosAPI      = "operator-talos-api"
	RuleOperatorKubeAPI       = "operator-kube-api"
	RuleClusterKubernetesAPI  = "cluster-kube-api"
	RuleClusterKubeletMetrics = "cluster-kubelet"
)

// firewallDocuments returns the ingress firewall of the node.
//
// The default action is block: with accept, Talos turns every rule into a
// block list for its port, so an operator-only 6443 rule would also cut pods
// (the Teleport agent, CoreDNS) off the API server. With block, Talos itself
// still lets through loopback (the node talking to its own address),
// established connections and pod-to-pod traffic; pods reaching host ports
// (the API server behind the kubernetes Service, the kubelet for metrics)
// need the cluster rules below. etcd, trustd and every other port stay closed
// because a single node reaches them over loopback.
func firewallDocuments(node netip.Addr, podCIDRs, serviceCIDRs []netip.Prefix, operator netip.Addr) []config.Document {
	action := network.NewDefaultActionConfigV1Alpha1()
	action.Ingress = nethelpers.DefaultActionBlock

	nodeOnly := netip.PrefixFrom(node, node.BitLen())
	inCluster := append(append(append([]netip.Prefix{}, podCIDRs...), serviceCIDRs...), nodeOnly)

	docs := []config.Document{
		action,
		tcpRule(RuleClusterKubernetesAPI, KubernetesAPIPort, inCluster...),
		tcpRule(RuleClusterKubeletMetrics, KubeletPort, append(append([]netip.Prefix{}, podCIDRs...), nodeOnly)...),
	}

	if operator.IsValid() {
		operatorOnly := netip.PrefixFrom(operator, operator.BitLen())
		docs = append(docs,
			tcpRule(RuleOperatorTalosAPI, TalosAPIPort, operatorOnly),
			tcpRule(RuleOperatorKubeAPI, KubernetesAPIPort, operatorOnly),
		)
	}

	return docs
}

func tcpRule(name string, port uint16, subnets ...netip.Prefix) *network.RuleConfigV1Alpha1 {
	rule := network.NewRuleConfigV1Alpha1()
	rule.MetaName = name
	rule.PortSelector.Protocol = nethelpers.ProtocolTCP
	rule.PortSelector.Ports = network.PortRanges{{Lo: port, Hi: port}}

	for _, subnet := range subnets {
		rule.Ingress = append(rule.Ingress, network.IngressRule{Subnet: subnet})
	}

	return rule
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
