package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// talosVersions are the "Talos vX" of every talos check of a status report.
func talosVersions(rep map[string]any) []string {
	var out []string
	checks, _ := rep["checks"].([]any)
	for _, c := range checks {
		m := c.(map[string]any)
		if m["component"] == "talos" {
			d, _ := m["detail"].(string)
			out = append(out, strings.SplitN(d, ",", 2)[0])
		}
	}
	return out
}

// Upgrades through the real binary: a three-control-plane cluster that a
// run left open (the Talos API answers this machine), a dry run, Talos
// upgraded one node at a time with health gates, the same command again
// skipping every node, a stopped upgrade that says where and how to go on,
// Kubernetes moved; then the lockdown finished, and upgrade, status and a
// break-glass opening reaching the locked-down nodes from inside (Teleport
// Kubernetes access, a pod per node), with no pod left behind, and refused
// without a change when Teleport denies Kubernetes access.
func TestUpgradeThroughTheBinary(t *testing.T) {
	t.Parallel()
	w := serve(t, "--sandbox-fault", "teleport.agent=never")
	w.must(3, "provision", "--cluster-name", "up", "--control-planes", "3", "--output", "json")

	plan := w.must(0, "upgrade", "--cluster-name", "up", "--talos-version", "v1.12.5", "--dry-run", "--output", "json")
	var res struct {
		DryRun bool `json:"dry_run"`
		Steps  []struct{ Node, Role, Component, From, To, State string }
	}
	if err := json.Unmarshal([]byte(plan.out), &res); err != nil {
		t.Fatalf("plan is not JSON: %v\n%s", err, plan.out)
	}
	if !res.DryRun || len(res.Steps) != 3 || res.Steps[0].Node != "up-cp-1" || res.Steps[0].From != "v1.12.4" || res.Steps[0].State != "planned" {
		t.Fatalf("plan: %+v", res)
	}
	if v := talosVersions(w.status(1, "up")); strings.Join(v, ",") != "Talos v1.12.4,Talos v1.12.4,Talos v1.12.4" {
		t.Fatalf("a dry run changed something: %v", v)
	}

	up := w.must(0, "upgrade", "--cluster-name", "up", "--talos-version", "v1.12.5")
	if strings.Count(up.out, " done") != 3 || !strings.Contains(up.err, "up-cp-1: cluster healthy; upgrading talos v1.12.4 → v1.12.5") {
		t.Errorf("upgrade:\n%s\n%s", up.out, up.err)
	}
	// Control planes one at a time, in order.
	if i, j := strings.Index(up.err, "up-cp-1: talos v1.12.5"), strings.Index(up.err, "up-cp-2: cluster healthy"); i < 0 || j < i {
		t.Errorf("up-cp-2 started before up-cp-1 was upgraded and healthy:\n%s", up.err)
	}
	rep := w.status(1, "up") // degraded only by Teleport and the open ports
	if v := talosVersions(rep); strings.Join(v, ",") != "Talos v1.12.5,Talos v1.12.5,Talos v1.12.5" {
		t.Fatalf("after upgrade: %v", v)
	}
	if got, detail := check(rep, "talos"); got != "ok" || !strings.Contains(detail, "up-cp-1") || !strings.Contains(detail, "up-cp-2") || !strings.Contains(detail, "up-cp-3") {
		t.Errorf("talos after upgrade: %s (%s), want every control plane an etcd member", got, detail)
	}
	// The Kubernetes API answers this machine here, so node readiness was
	// part of every gate, and status reads it.
	if !strings.Contains(up.err, "every node registered and Ready is part of the health gate") {
		t.Errorf("the gate did not read node readiness:\n%s", up.err)
	}
	if got, detail := check(rep, "kubernetes"); got != "ok" || !strings.Contains(detail, "3 node(s) registered and Ready") {
		t.Errorf("kubernetes after upgrade: %s (%s)", got, detail)
	}
	again := w.must(0, "upgrade", "--cluster-name", "up", "--talos-version", "v1.12.5")
	if strings.Count(again.out, "skipped") != 3 {
		t.Errorf("the same upgrade again did not skip every node:\n%s", again.out)
	}

	// A node that acknowledges but never reboots into the new version: the
	// upgrade stops there, on the first node, and says how to go on.
	w.must(0, "sandbox", "fault", "talos.upgrade=never", "teleport.agent=never")
	stopped := w.must(1, "upgrade", "--cluster-name", "up", "--talos-version", "v1.12.6")
	if !strings.Contains(stopped.err, "stopped upgrading up-cp-1") || !(strings.Contains(stopped.err, "still Talos v1.12.5") || strings.Contains(stopped.err, "last answered as Talos v1.12.5")) ||
		!strings.Contains(stopped.err, "the same command continues") {
		t.Errorf("stopped upgrade:\n%s", stopped.err)
	}
	if strings.Contains(stopped.err, "up-cp-2: cluster healthy") {
		t.Errorf("the upgrade went on past a node that failed:\n%s", stopped.err)
	}
	w.must(0, "sandbox", "fault", "teleport.agent=never")
	w.must(0, "upgrade", "--cluster-name", "up", "--talos-version", "v1.12.6", "--kubernetes-version", "1.35.2")
	if v := talosVersions(w.status(1, "up")); strings.Join(v, ",") != "Talos v1.12.6,Talos v1.12.6,Talos v1.12.6" {
		t.Fatalf("after the continued upgrade: %v", v)
	}

	// Teleport fixed: resume verifies and locks down; the cluster is
	// healthy and closed to the internet, and the day-two commands reach
	// its nodes from inside, through Teleport Kubernetes access.
	w.must(0, "sandbox", "fault")
	// No --control-planes: the shape comes from the servers' role tags.
	w.must(0, "provision", "--resume", "--cluster-name", "up", "--output", "json")
	rep = w.status(0, "up")
	if rep["state"] != "ok" {
		t.Fatalf("status after resume: %v", rep)
	}
	if got, detail := check(rep, "kubernetes"); got != "ok" || !strings.Contains(detail, "3 node(s) registered and Ready (read through Teleport)") {
		t.Errorf("kubernetes on a locked-down cluster: %s (%s), want every node Ready, read through Teleport", got, detail)
	}
	if got, detail := check(rep, "talos"); got != "ok" || !strings.Contains(detail, "route: inside") {
		t.Errorf("talos on a locked-down cluster: %s (%s), want ok through the inside route", got, detail)
	}
	noPods := func(when string) {
		t.Helper()
		var inv struct {
			Kubernetes struct{ Objects []string }
		}
		r := w.must(0, "sandbox", "inventory", "--output", "json")
		if err := json.Unmarshal([]byte(r.out), &inv); err != nil {
			t.Fatalf("inventory: %v", err)
		}
		for _, o := range inv.Kubernetes.Objects {
			if strings.HasPrefix(o, "Pod/") {
				t.Errorf("%s: pod left in the cluster: %s", when, o)
			}
		}
	}
	noPods("after status")

	inside := w.must(0, "upgrade", "--cluster-name", "up", "--talos-version", "v1.12.7")
	if !strings.Contains(inside.err, "Talos API reached Teleport Kubernetes access") || strings.Count(inside.out, " done") != 3 ||
		!strings.Contains(inside.err, "reached through Teleport: every node registered and Ready is part of the health gate") {
		t.Errorf("upgrade of a locked-down cluster:\n%s\n%s", inside.out, inside.err)
	}
	rep = w.status(0, "up")
	if v := talosVersions(rep); strings.Join(v, ",") != "Talos v1.12.7,Talos v1.12.7,Talos v1.12.7" {
		t.Fatalf("after the upgrade from inside: %v", v)
	}
	if got, detail := check(rep, "ports"); got != "ok" || !strings.Contains(detail, "closed from here") {
		t.Errorf("the upgrade from inside opened something: ports %s (%s)", got, detail)
	}
	noPods("after the upgrade from inside")

	// Teleport refuses Kubernetes access: nothing changes, nothing is left.
	w.must(0, "sandbox", "fault", "teleport.kube-proxy=deny")
	denied := w.must(1, "upgrade", "--cluster-name", "up", "--talos-version", "v1.12.8")
	if !strings.Contains(denied.err, "locked down") || !strings.Contains(denied.err, "access denied") {
		t.Errorf("upgrade with Kubernetes access denied:\n%s", denied.err)
	}
	w.must(0, "sandbox", "fault")
	noPods("after the refused upgrade")
	if v := talosVersions(w.status(0, "up")); strings.Join(v, ",") != "Talos v1.12.7,Talos v1.12.7,Talos v1.12.7" {
		t.Fatalf("a refused upgrade changed something: %v", v)
	}

	// The Teleport role maps to a group the cluster binds nothing to:
	// Teleport lets the requests through, the cluster's RBAC refuses them,
	// and the error names the group, the refusal and what to set.
	w.must(0, "sandbox", "fault", "teleport.kube-groups=deny")
	unbound := w.must(1, "upgrade", "--cluster-name", "up", "--talos-version", "v1.12.8")
	for _, want := range []string{"locked down", "the cluster's Kubernetes RBAC refused the inside route",
		`cannot list resource "pods"`, "Kubernetes group(s) developers", "kubernetes_groups: [rawkode-cloud:inside-route]"} {
		if !strings.Contains(unbound.err, want) {
			t.Errorf("upgrade with an unbound Kubernetes group does not say %q:\n%s", want, unbound.err)
		}
	}
	// status cannot observe the nodes then, and says why.
	if got, detail := check(w.status(0, "up"), "talos"); got != "unknown" ||
		!strings.Contains(detail, "the cluster's Kubernetes RBAC refused the inside route") || !strings.Contains(detail, "developers") {
		t.Errorf("status with an unbound Kubernetes group: talos %s (%s)", got, detail)
	}
	w.must(0, "sandbox", "fault")
	noPods("after the upgrade refused by RBAC")

	// Break glass on a locked-down cluster: the opening is applied from
	// inside, closes itself, and the cluster is locked down again.
	r := w.must(0, "access", "open", "--cluster-name", "up", "--for", "2s")
	if !strings.Contains(r.err, "applied from inside the cluster") || !strings.Contains(r.out, "opening closed (time is up)") {
		t.Errorf("access open on a locked-down cluster:\n%s\n%s", r.out, r.err)
	}
	rep = w.status(0, "up")
	if got, detail := check(rep, "ports"); got != "ok" || !strings.Contains(detail, "closed from here") {
		t.Errorf("after the opening: ports %s (%s)", got, detail)
	}
	noPods("after access open")
	w.must(0, "destroy", "--cluster-name", "up", "--yes", "--delete-secrets", "--output", "json")
}

// startAccess starts `access open` and waits until it says the opening is
// in force.
func (w *world) startAccess(args ...string) (*exec.Cmd, *bytes.Buffer) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	w.t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, binary(w.t), append(append([]string{"access", "open"}, args...), "--config", w.config)...)
	cmd.Env = []string{"HOME=" + w.home, "PATH=" + os.Getenv("PATH")}
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		w.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	var said strings.Builder
	for sc.Scan() {
		said.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "Ctrl-C closes it early") {
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd, &out
		}
	}
	_ = cmd.Wait()
	w.t.Fatalf("access open never said it was open; stdout:\n%s\nstderr:\n%s", out.String(), said.String())
	return nil, nil
}

// Break-glass access through the real binary, on clusters a run left open
// (the only ones whose Talos API answers from here; closing an opening
// locks the cluster down for good): an opening that closes itself after
// 2s, one closed by Ctrl-C while status sees it, and one left behind by a
// killed process that 'access close' finds and closes — each time proven
// closed from here.
func TestAccessOpensAndClosesThroughTheBinary(t *testing.T) {
	t.Parallel()
	w := serve(t, "--sandbox-fault", "teleport.agent=never")
	for _, c := range []string{"glass", "ctrlc", "killed"} {
		w.must(3, "provision", "--cluster-name", c, "--output", "json")
	}
	closed := func(cluster, when string) {
		t.Helper()
		rep := w.status(1, cluster) // the agent never registered: degraded
		if got, detail := check(rep, "ports"); got != "ok" || !strings.Contains(detail, "closed from here") {
			t.Errorf("%s: ports %s (%s)", when, got, detail)
		}
		if got, detail := check(rep, "access"); got != "ok" || detail != "no break-glass opening recorded" {
			t.Errorf("%s: access %s (%s)", when, got, detail)
		}
	}

	r := w.must(0, "access", "open", "--cluster-name", "glass", "--for", "2s")
	if !strings.Contains(r.out, "opening closed (time is up)") {
		t.Errorf("access open --for 2s:\n%s\n%s", r.out, r.err)
	}
	closed("glass", "after --for 2s")
	// Closed means locked down: nothing opens it from here any more.
	if r := w.must(1, "access", "open", "--cluster-name", "glass", "--for", "2s"); !strings.Contains(r.err, "locked down") {
		t.Errorf("second opening of a closed cluster:\n%s", r.err)
	}

	cmd, out := w.startAccess("--cluster-name", "ctrlc", "--for", "10m")
	rep := w.status(1, "ctrlc")
	if got, detail := check(rep, "ports"); got != "ok" || !strings.Contains(detail, "break-glass opening") {
		t.Errorf("during the opening: ports %s (%s)", got, detail)
	}
	if got, detail := check(rep, "access"); got != "ok" || !strings.Contains(detail, "recorded until") {
		t.Errorf("during the opening: access %s (%s)", got, detail)
	}
	if got, _ := check(rep, "talos"); got != "ok" {
		t.Errorf("during the opening the Talos API should answer: talos %s", got)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil || !strings.Contains(out.String(), "opening closed (interrupted)") {
		t.Errorf("access open after Ctrl-C: %v\n%s", err, out.String())
	}
	closed("ctrlc", "after Ctrl-C")

	// A process killed outright cannot close anything: the opening stays
	// recorded, status says so, and access close cleans up.
	cmd, _ = w.startAccess("--cluster-name", "killed", "--for", "10m")
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if got, detail := check(w.status(1, "killed"), "access"); !strings.Contains(detail, "recorded until") {
		t.Errorf("after a killed access open: access %s (%s)", got, detail)
	}
	r = w.must(0, "access", "close", "--cluster-name", "killed")
	if !strings.Contains(r.out, "closed on 1 node(s)") {
		t.Errorf("access close:\n%s", r.out)
	}
	closed("killed", "after access close")
	w.must(0, "access", "close", "--cluster-name", "killed") // nothing left to close
	for _, c := range []string{"glass", "ctrlc", "killed"} {
		w.must(0, "destroy", "--cluster-name", c, "--yes", "--delete-secrets", "--output", "json")
	}
}
