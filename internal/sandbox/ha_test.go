package sandbox_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
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
	// --report's per-node waits: every wait maps to an event that happened,
	// and every node, workers included (kubelet and apid only), has its
	// own "services healthy".
	tl := r.sb.Timeline()
	for _, e := range r.events {
		if e.Type != "wait" {
			continue
		}
		what, _ := e.Fields["wait"].(string)
		if _, ev, ok := sandbox.ConditionTime(tl, what); !ok {
			t.Errorf("wait %q: condition %q not on the timeline", what, ev)
		}
	}
	healthy := map[string]bool{}
	for _, e := range tl {
		if e.Name == sandbox.TimelineServicesHealth {
			healthy[e.Subject] = true
		}
	}
	for _, srv := range inv.Servers {
		if ip := srv["ip"].(string); !healthy[ip] {
			t.Errorf("node %s (%s) has no services-healthy event on the timeline", srv["name"], ip)
		}
	}

	_, events, err := destroyRecorded(t, r.sb, "ha", "", true)
	if err != nil {
		t.Fatalf("destroy: %v", err)
	}
	// The servers go side by side: their waits overlap.
	deleting, most := map[string]bool{}, 0
	for _, e := range events {
		what, _ := e.Fields["wait"].(string)
		if !strings.HasSuffix(what, " to be deleted") {
			continue
		}
		switch e.Type {
		case pipeline.EventWait:
			deleting[what] = true
		case pipeline.EventWaitDone:
			delete(deleting, what)
		}
		most = max(most, len(deleting))
	}
	if most < 2 {
		t.Errorf("destroy deleted the servers one after another (at most %d at once)", most)
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

// TestFaultOnOneNode breaks etcd on the second control plane only: the run
// fails naming that node's address, and every node is undone.
func TestFaultOnOneNode(t *testing.T) {
	t.Parallel()
	_, f, err := emulator.ParseFault("talos.services=never@node=onenode-cp-2")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := sandbox.Start(sandbox.Options{Speed: testSpeed, Faults: map[string]emulator.Fault{talos.FaultServices: f}})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	var cp2 string
	r := provisionSandboxWith(t, sb, runOpts{cluster: "onenode", controlPlanes: 3, patient: true,
		cancel: func(e pipeline.Event) bool {
			if e.Fields["node"] == "onenode-cp-2" && e.Fields["ip"] != nil && cp2 == "" {
				cp2, _ = e.Fields["ip"].(string)
			}
			return false
		}})
	if r.code != 1 {
		t.Fatalf("exit %d (%v), want 1", r.code, r.err)
	}
	if cp2 == "" || !strings.Contains(r.err.Error(), cp2) {
		t.Errorf("error does not name cp-2 (%s): %v", cp2, r.err)
	}
	if strings.Count(r.err.Error(), "waiting for services") != 1 {
		t.Errorf("more than one node failed: %v", r.err)
	}
	if inv := sb.Inventory(); !inv.Empty() {
		t.Errorf("left behind: %+v", inv)
	}
}

// TestWorkerKubeletNeverJoins: Talos calls the worker's kubelet healthy, but
// its Node never appears in Kubernetes. The registration check catches it
// before the lockdown, names the worker, and leaves every node running and
// reachable for debugging (exit 3).
func TestWorkerKubeletNeverJoins(t *testing.T) {
	t.Parallel()
	_, f, err := emulator.ParseFault("talos.kubelet=never@node=kj-worker-1")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := sandbox.Start(sandbox.Options{Speed: testSpeed, Faults: map[string]emulator.Fault{talos.FaultKubelet: f}})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	r := provisionSandboxWith(t, sb, runOpts{cluster: "kj", controlPlanes: 1, workers: 1, patient: true,
		set: map[string]string{config.KubernetesTimeout: "2m"}})
	if r.code != 3 {
		t.Fatalf("exit %d (%v), want 3\n%s", r.code, r.err, dump(r.events))
	}
	msg := r.err.Error()
	if !strings.Contains(msg, "missing kj-worker-1") || strings.Contains(msg, "missing kj-cp-1") {
		t.Errorf("error does not name exactly the worker that never registered: %v", msg)
	}
	if strings.Contains(msg, "Teleport") || strings.Contains(msg, "etcd") {
		t.Errorf("other checks failed too: %v", msg)
	}
	inv := sb.Inventory()
	if len(inv.Servers) != 2 {
		t.Fatalf("servers left %d, want both kept for debugging", len(inv.Servers))
	}
	for _, srv := range inv.Servers {
		if ip := srv["ip"].(string); !sb.Node(ip).Allowed(machineconfig.TalosAPIPort, sandbox.OperatorIP) {
			t.Errorf("node %s was locked down although verification failed", ip)
		}
	}
}
