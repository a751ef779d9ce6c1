package sandbox_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/sandbox"
	"github.com/rawkode/rawkode-cloud/internal/talos"
)

// TestHighlyAvailableClusterEndToEnd builds 3 control planes and 2 workers:
// every server tagged with its role and name, one A record per control
// plane, etcd bootstrapped once and joined by the others through their
// firewalls, every node locked down; destroy then removes all of it.
func TestHighlyAvailableClusterEndToEnd(t *testing.T) {
	t.Parallel()
	r := provisionSandbox(t, runOpts{cluster: "ha", controlPlanes: 3, workers: 2, patient: true})
	if r.err != nil {
		t.Fatalf("provision failed (exit %d): %v\n%s", r.code, r.err, dump(r.events))
	}
	inv := r.sb.Inventory()
	if len(inv.Servers) != 5 || len(inv.DNSRecords) != 3 || len(inv.KubeServers) != 1 || len(inv.Tokens) != 0 {
		t.Fatalf("inventory after success: %+v", inv)
	}
	var cpIPs []string
	for _, srv := range inv.Servers {
		name, _ := srv["name"].(string)
		tags, _ := srv["tags"].(string)
		role := "worker"
		if strings.Contains(name, "-cp-") {
			role = "controlplane"
			cpIPs = append(cpIPs, srv["ip"].(string))
		}
		for _, want := range []string{"cluster=ha", "role=" + role, "node=" + name} {
			if !slices.Contains(strings.Split(tags, ","), want) {
				t.Errorf("server %s tags %s, want %s", name, tags, want)
			}
		}
	}
	var records []string
	for _, rec := range inv.DNSRecords {
		records = append(records, rec["content"].(string))
	}
	slices.Sort(records)
	slices.Sort(cpIPs)
	if !slices.Equal(records, cpIPs) {
		t.Errorf("A records %v, want one per control plane %v", records, cpIPs)
	}
	bootstraps := 0
	for _, srv := range inv.Servers {
		ip := srv["ip"].(string)
		node := r.sb.Node(ip)
		if node == nil {
			t.Fatalf("no emulated node at %s", ip)
		}
		bootstraps += node.BootstrapCount()
		cfgs := node.AppliedConfigs()
		if hasOperatorRules(t, cfgs[len(cfgs)-1]) {
			t.Errorf("node %s not locked down", ip)
		}
		if node.Allowed(machineconfig.TalosAPIPort, sandbox.OperatorIP) {
			t.Errorf("node %s still admits the operator on the Talos API", ip)
		}
		if slices.Contains(cpIPs, ip) && len(node.EtcdMembers()) != 3 {
			t.Errorf("control plane %s sees etcd members %v, want 3", ip, node.EtcdMembers())
		}
	}
	if bootstraps != 1 {
		t.Errorf("etcd bootstrapped %d times, want exactly once", bootstraps)
	}

	if _, err := destroy(t, r.sb, "ha", "", true); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if inv := r.sb.Inventory(); !inv.Empty() {
		t.Errorf("destroy left %+v", inv)
	}
}

// TestForgottenEtcdRuleFormsNoCluster proves the emulated network is as
// strict as metal: control planes whose firewalls do not admit each other on
// etcd's ports never join the bootstrap node, so phase 5 fails and
// everything is undone.
func TestForgottenEtcdRuleFormsNoCluster(t *testing.T) {
	t.Parallel()
	sb, err := sandbox.Start(sandbox.Options{Speed: testSpeed})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	sb.RewriteConfigs(func(cfg []byte) []byte {
		out, err := machineconfig.DropRule(cfg, machineconfig.RuleNodesEtcd)
		if err != nil {
			t.Error(err)
			return cfg
		}
		return out
	})
	r := provisionSandboxWith(t, sb, runOpts{cluster: "noetcd", controlPlanes: 3, patient: true})
	if r.code != 1 {
		t.Fatalf("exit %d (%v), want 1: a cluster formed without the etcd rule", r.code, r.err)
	}
	if !strings.Contains(r.err.Error(), talos.ServiceEtcd) {
		t.Errorf("error does not name etcd: %v", r.err)
	}
	if inv := sb.Inventory(); !inv.Empty() {
		t.Errorf("left behind: %+v", inv)
	}
}
