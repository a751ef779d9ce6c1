package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	teleportapi "github.com/gravitational/teleport/api"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/metering"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/provision"
	"github.com/rawkode/rawkode-cloud/internal/redact"
	"github.com/rawkode/rawkode-cloud/internal/sandbox"
)

// testSpeed runs the realistic profile fast enough for the suite while the
// CLI's waits, scaled by the same factor, keep their proportions.
const testSpeed = 400

type result struct {
	sb     *sandbox.Sandbox
	code   int
	err    error
	events []pipeline.Event
	prov   *provision.Provisioner
}

type runOpts struct {
	faults  map[string]emulator.Fault
	cancel  func(e pipeline.Event) bool // cancel the run when this returns true
	cluster string
	meter   *metering.Meter
	// controlPlanes and workers size the cluster (zero: one node).
	controlPlanes, workers int
	// patient widens the waits a test does not exercise, so that a loaded
	// machine's slow handshakes do not fail the run somewhere else.
	patient bool
	// set are further settings, as if given by flag.
	set map[string]string
	// afterChecks are faults set once phase 0 is done: a failure later in
	// the run on a call phase 0's checks also make.
	afterChecks map[string]emulator.Fault
}

func provisionSandbox(t *testing.T, o runOpts) result {
	t.Helper()
	sb, err := sandbox.Start(sandbox.Options{Speed: testSpeed, Faults: o.faults})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	return provisionSandboxWith(t, sb, o)
}

// provisionSandboxWith provisions on a sandbox the test set up itself.
func provisionSandboxWith(t *testing.T, sb *sandbox.Sandbox, o runOpts) result {
	t.Helper()
	cfg := config.New()
	if o.cluster != "" {
		cfg.Set(config.ClusterName, o.cluster, config.FromFlag, "--cluster-name")
	}
	if o.controlPlanes > 0 {
		cfg.Set(config.ControlPlanes, fmt.Sprint(o.controlPlanes), config.FromFlag, "--control-planes")
		cfg.Set(config.Workers, fmt.Sprint(o.workers), config.FromFlag, "--workers")
	}
	if o.patient {
		for _, name := range []string{config.ServerTimeout, config.TalosMaintenanceTimeout, config.TalosMTLSTimeout} {
			cfg.Set(name, "4h", config.FromFlag, "--"+name)
		}
	}
	for k, v := range o.set {
		cfg.Set(k, v, config.FromFlag, "--"+k)
	}
	sb.Apply(cfg)
	red := redact.New()
	red.Add(cfg.Secrets()...)
	f := sb.Factory()
	f.Meter = o.meter
	p := provision.New(provision.Options{Config: cfg, Factory: f, Redactor: red, Sandbox: true})
	t.Cleanup(p.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rec := &pipeline.Recorder{}
	var once sync.Once
	sink := pipeline.SinkFunc(func(e pipeline.Event) {
		rec.Emit(e)
		if e.Type == pipeline.EventPhaseDone && e.Phase == p.Phases()[0].Title() {
			for point, f := range o.afterChecks {
				sb.Faults().Set(point, f)
			}
		}
		if o.cancel != nil && o.cancel(e) {
			once.Do(cancel)
		}
	})
	runner := pipeline.Runner{Phases: p.Phases(), Sink: sink, UndoTimeout: cfg.Duration(config.UndoTimeout)}
	_, err := runner.Execute(ctx)
	return result{sb: sb, code: fail.ExitCode(err), err: err, events: rec.Events(), prov: p}
}

func TestProvisionSucceedsEndToEnd(t *testing.T) {
	t.Parallel()
	r := provisionSandbox(t, runOpts{cluster: "e2e"})
	if r.err != nil {
		t.Fatalf("provision failed (exit %d): %v\n%s", r.code, r.err, dump(r.events))
	}
	inv := r.sb.Inventory()
	if len(inv.Servers) != 1 || len(inv.DNSRecords) != 1 || len(inv.KubeServers) != 1 {
		t.Fatalf("inventory after success: %+v", inv)
	}
	if len(inv.Tokens) != 0 {
		t.Errorf("join tokens left valid after the agent joined: %v", inv.Tokens)
	}
	if len(inv.Secrets) != 3 {
		t.Errorf("stored secrets = %v, want bundle, talosconfig and kubeconfig", inv.Secrets)
	}
	ip, _ := inv.Servers[0]["ip"].(string)
	if inv.DNSRecords[0]["content"] != ip {
		t.Errorf("DNS record points at %v, server has %s", inv.DNSRecords[0]["content"], ip)
	}
	node := r.sb.Node(ip)
	if node == nil {
		t.Fatal("no emulated node for the server")
	}
	cfgs := node.AppliedConfigs()
	if len(cfgs) < 2 {
		t.Fatalf("node got %d configs, want the initial and the lockdown", len(cfgs))
	}
	if want := "teleport-distroless:" + teleportapi.Version; !strings.Contains(string(cfgs[0]), want) {
		t.Errorf("kube agent does not run the Teleport cluster's version (%s)", want)
	}
	if !hasOperatorRules(t, cfgs[0]) {
		t.Error("initial config lacks the operator /32 rules")
	}
	if hasOperatorRules(t, cfgs[len(cfgs)-1]) {
		t.Error("last applied config still has operator rules: not locked down")
	}
	for _, port := range []int{machineconfig.TalosAPIPort, machineconfig.KubernetesAPIPort} {
		if node.Allowed(port, sandbox.OperatorIP) {
			t.Errorf("port %d still admits the operator after lockdown", port)
		}
	}
	if s := r.prov.Summary(); s["locked_down"] != true {
		t.Errorf("summary says not locked down: %v", s)
	}
}

func hasOperatorRules(t *testing.T, cfg []byte) bool {
	t.Helper()
	fw, err := machineconfig.FirewallRules(cfg)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range fw.Rules {
		if r.Operator() {
			found = true
			for _, s := range r.Subnets {
				if s.Bits() != 32 {
					t.Errorf("operator rule %s opens %s, want a /32", r.Name, s)
				}
			}
		}
	}
	return found
}

func dump(events []pipeline.Event) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "  %s [%s] %s %v\n", e.Type, e.Phase, e.Message, e.Fields)
	}
	return b.String()
}

// Each phase's failure removes everything and exits 1.
func TestFailureInEachPhaseLeavesNothing(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"phase 1 order":     "scaleway.create-server=error",
		"phase 2 install":   "scaleway.install=error",
		"phase 2 talos":     "talos.maintenance=never",
		"phase 3 dns":       "cloudflare.upsert-record=error",
		"phase 4 token":     "teleport.create-token=error",
		"phase 4 secrets":   "later: infisical.write-secrets=error", // phase 0 writes a probe secret
		"phase 5 apply":     "talos.apply=error",
		"phase 5 reboot":    "talos.reboot=never",
		"phase 5 bootstrap": "talos.bootstrap=error",
		"phase 5 services":  "talos.services=never",
		"phase 6 lockdown":  "talos.lockdown=error",
	}
	for name, spec := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			point, later := strings.CutPrefix(spec, "later: ")
			faults, err := sandbox.ParseFaults([]string{point})
			if err != nil {
				t.Fatal(err)
			}
			o := runOpts{faults: faults}
			if later {
				o = runOpts{afterChecks: faults}
			}
			r := provisionSandbox(t, o)
			if r.code != fail.Failed {
				t.Fatalf("exit code %d (%v), want %d\n%s", r.code, r.err, fail.Failed, dump(r.events))
			}
			if inv := r.sb.Inventory(); !inv.Empty() {
				t.Fatalf("left behind after undo: %+v\n%s", inv, dump(r.events))
			}
		})
	}
}

func TestAgentNeverRegistersLeavesServerRunning(t *testing.T) {
	t.Parallel()
	faults, _ := sandbox.ParseFaults([]string{"teleport.agent=never"})
	r := provisionSandbox(t, runOpts{faults: faults})
	if r.code != fail.LeftRunning {
		t.Fatalf("exit code %d (%v), want %d", r.code, r.err, fail.LeftRunning)
	}
	var f *pipeline.Failure
	if !errors.As(r.err, &f) || !strings.Contains(f.Hint, "destroy") {
		t.Errorf("no debugging hint with the destroy command: %v", r.err)
	}
	inv := r.sb.Inventory()
	if len(inv.Servers) != 1 {
		t.Fatalf("servers = %v, want the one left for debugging", inv.Servers)
	}
	ip, _ := inv.Servers[0]["ip"].(string)
	node := r.sb.Node(ip)
	if node == nil || !node.Allowed(machineconfig.TalosAPIPort, sandbox.OperatorIP) {
		t.Error("firewall closed although verification failed: the operator could not debug")
	}
}

// Cancellation in each phase removes everything and exits 130.
func TestInterruptInEachPhase(t *testing.T) {
	t.Parallel()
	phases := []string{"Resolve secrets", "Order server", "Wait for install and Talos", "Update DNS", "Generate config", "Bootstrap cluster", "Verify and lock down"}
	for _, ph := range phases {
		t.Run(ph, func(t *testing.T) {
			t.Parallel()
			r := provisionSandbox(t, runOpts{cancel: func(e pipeline.Event) bool {
				// Cancel once the phase is under way (its first own event
				// after the start, or the start itself for short phases).
				return e.Phase == ph && e.Type != pipeline.EventPhaseDone
			}})
			if r.code != fail.Interrupted {
				t.Fatalf("exit code %d (%v), want %d\n%s", r.code, r.err, fail.Interrupted, dump(r.events))
			}
			if inv := r.sb.Inventory(); !inv.Empty() {
				t.Fatalf("left behind after interrupt: %+v\n%s", inv, dump(r.events))
			}
		})
	}
}

func destroy(t *testing.T, sb *sandbox.Sandbox, cluster, serverID string, deleteSecrets bool) (*provision.Destroyer, error) {
	t.Helper()
	d, _, err := destroyRecorded(t, sb, cluster, serverID, deleteSecrets)
	return d, err
}

// destroyRecorded is destroy that also returns the run's events.
func destroyRecorded(t *testing.T, sb *sandbox.Sandbox, cluster, serverID string, deleteSecrets bool) (*provision.Destroyer, []pipeline.Event, error) {
	t.Helper()
	cfg := config.New()
	if cluster != "" {
		cfg.Set(config.ClusterName, cluster, config.FromFlag, "--cluster-name")
	}
	sb.Apply(cfg)
	d := provision.NewDestroyer(provision.DestroyOptions{Config: cfg, Factory: sb.Factory(), ServerID: serverID, DeleteSecrets: deleteSecrets})
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rec := &pipeline.Recorder{}
	_, err := (&pipeline.Runner{Phases: append(d.FindPhases(), d.Phases()...), Sink: rec}).Execute(ctx)
	return d, rec.Events(), err
}

func TestDestroyByServerIDAndByClusterName(t *testing.T) {
	t.Parallel()
	for _, byID := range []bool{true, false} {
		name := "by-cluster-name"
		if byID {
			name = "by-server-id"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := provisionSandbox(t, runOpts{cluster: "doomed"})
			if r.err != nil {
				t.Fatalf("provision: %v", r.err)
			}
			id := ""
			cluster := "doomed"
			if byID {
				id, _ = r.sb.Inventory().Servers[0]["id"].(string)
			}
			d, err := destroy(t, r.sb, cluster, id, true)
			if err != nil {
				t.Fatalf("destroy: %v", err)
			}
			if len(d.Removed()) == 0 {
				t.Error("destroy reports nothing removed")
			}
			inv := r.sb.Inventory()
			if len(inv.Servers)+len(inv.DNSRecords)+len(inv.Tokens)+len(inv.KubeServers) != 0 {
				t.Errorf("left after destroy: %+v", inv)
			}
			if len(inv.Secrets) != 0 {
				t.Errorf("secrets left although --delete-secrets: %v", inv.Secrets)
			}
			// Twice in a row: everything is already gone, and that is success.
			d, err = destroy(t, r.sb, "doomed", id, true)
			if err != nil {
				t.Fatalf("second destroy: %v", err)
			}
			if len(d.Removed()) != 0 {
				t.Errorf("second destroy removed %v", d.Removed())
			}
		})
	}
}

func TestDestroyKeepsSecretsByDefault(t *testing.T) {
	t.Parallel()
	r := provisionSandbox(t, runOpts{cluster: "keeper"})
	if r.err != nil {
		t.Fatalf("provision: %v", r.err)
	}
	if _, err := destroy(t, r.sb, "keeper", "", false); err != nil {
		t.Fatal(err)
	}
	inv := r.sb.Inventory()
	if len(inv.Servers) != 0 || len(inv.Secrets) != 3 {
		t.Errorf("want the server gone and the 3 stored secrets kept: %+v", inv)
	}
}

// What a real run counts at the wire matches what the emulators served.
func TestMeterCountsWhatTheServicesServed(t *testing.T) {
	t.Parallel()
	m := metering.New()
	r := provisionSandbox(t, runOpts{cluster: "metered", meter: m})
	if r.err != nil {
		t.Fatalf("provision: %v", r.err)
	}
	sent := m.Snapshot()
	served := r.sb.Requests()
	for _, svc := range []string{"scaleway", "cloudflare", "infisical", "teleport", "talos", "ipdetect"} {
		total := func(ops map[string]int, skip map[string]bool) int {
			n := 0
			for op, c := range ops {
				if !skip[op] {
					n += c
				}
			}
			return n
		}
		s, v := total(sent[svc], nil), total(served[svc], sandbox.AgentOps[svc])
		if svc == "infisical" {
			// The SDK's own token renewal and folder look-ups are not
			// counted by the adapter; every counted request was served.
			if s == 0 || s > v {
				t.Errorf("%s: sent %d %v, served %d %v", svc, s, sent[svc], v, served[svc])
			}
			continue
		}
		if svc == "talos" {
			// A probe sent just as the node goes down to reboot (its
			// maintenance API lingers after the apply, as a real node's
			// does) reaches a server that is closing and is never served.
			if cut := sent[svc]["Version"] - served[svc]["Version"]; cut >= 0 && cut <= 1 {
				s -= cut
			}
		}
		if s != v {
			t.Errorf("%s: sent %d %v, served %d %v", svc, s, sent[svc], v, served[svc])
		}
	}
}

// A second provision under the same cluster name is refused before any
// money is spent.
func TestSecondProvisionOfSameClusterIsRefused(t *testing.T) {
	t.Parallel()
	r := provisionSandbox(t, runOpts{cluster: "twice"})
	if r.err != nil {
		t.Fatalf("first provision: %v", r.err)
	}
	cfg := config.New()
	cfg.Set(config.ClusterName, "twice", config.FromFlag, "--cluster-name")
	r.sb.Apply(cfg)
	p := provision.New(provision.Options{Config: cfg, Factory: r.sb.Factory(), Sandbox: true})
	t.Cleanup(p.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := (&pipeline.Runner{Phases: p.Phases()}).Execute(ctx)
	if code := fail.ExitCode(err); code != fail.Usage || !strings.Contains(err.Error(), "destroy --cluster-name twice") {
		t.Fatalf("second provision: exit %d, %v", code, err)
	}
	if n := len(r.sb.Inventory().Servers); n != 1 {
		t.Errorf("servers = %d, want the first one only", n)
	}
}
