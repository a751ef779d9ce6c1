package talos

import (
	"net/netip"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/config/config"
	"github.com/siderolabs/talos/pkg/machinery/nethelpers"
)

// FirewallRule is one ingress rule of a machine config (a NetworkRuleConfig
// document), flattened to what the emulator enforces.
type FirewallRule struct {
	Name     string
	Protocol string      // "tcp", "udp", ...
	Ports    [][2]uint16 // inclusive ranges
	Subnets  []netip.Prefix
	Except   []netip.Prefix
}

// Firewall is the effective ingress firewall of a node. The zero value (no
// config applied yet) accepts everything, like a node in maintenance mode.
type Firewall struct {
	// DefaultAction is "accept" or "block".
	DefaultAction string
	Rules         []FirewallRule
}

// FirewallFromConfig extracts the ingress firewall of a machine config.
func FirewallFromConfig(cfg config.Config) Firewall {
	nr := cfg.NetworkRules()
	fw := Firewall{DefaultAction: nr.DefaultAction().String()}
	for _, r := range nr.Rules() {
		rule := FirewallRule{
			Protocol: r.Protocol().String(),
			Ports:    append([][2]uint16(nil), r.PortRanges()...),
			Subnets:  append([]netip.Prefix(nil), r.Subnets()...),
			Except:   append([]netip.Prefix(nil), r.ExceptSubnets()...),
		}
		if named, ok := r.(interface{ Name() string }); ok {
			rule.Name = named.Name()
		}
		fw.Rules = append(fw.Rules, rule)
	}
	return fw
}

func (r FirewallRule) matchesPort(port int) bool {
	if !strings.EqualFold(r.Protocol, nethelpers.ProtocolTCP.String()) {
		return false
	}
	for _, pr := range r.Ports {
		if port >= int(pr[0]) && port <= int(pr[1]) {
			return true
		}
	}
	return false
}

func (r FirewallRule) admits(src netip.Addr) bool {
	src = src.Unmap()
	for _, ex := range r.Except {
		if ex.Contains(src) {
			return false
		}
	}
	for _, sn := range r.Subnets {
		if sn.Contains(src) {
			return true
		}
	}
	return false
}

// Allowed reports whether a new TCP connection from src to port passes the
// firewall. It mirrors the nftables chain Talos builds:
//   - default accept: every rule is a block list for its ports — a source
//     outside any matching rule's subnets is dropped, everything else passes;
//   - default block: only a matching rule that admits the source lets it in
//     (loopback and established traffic aside, which never reach this check:
//     the emulated source of every connection is the operator).
func (f Firewall) Allowed(port int, src netip.Addr) bool {
	if f.DefaultAction == nethelpers.DefaultActionBlock.String() {
		for _, r := range f.Rules {
			if r.matchesPort(port) && r.admits(src) {
				return true
			}
		}
		return false
	}
	for _, r := range f.Rules {
		if r.matchesPort(port) && !r.admits(src) {
			return false
		}
	}
	return true
}
