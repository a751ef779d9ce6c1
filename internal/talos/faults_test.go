package talos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// faultRun is what one fault scenario observed.
type faultRun struct {
	n   *Node
	c   *Client
	rec *recorder
	fx  *fixture
}

func (r faultRun) ip() string { return testPublicIP.String() }

func TestFaults(t *testing.T) {
	t.Parallel()
	short := 600 * time.Millisecond
	tests := []struct {
		point string
		fault emulator.Fault
		from  stage // the node is driven this far before the fault is set
		// run performs the faulted step; check judges it.
		run func(ctx context.Context, r faultRun) error
		// wantErr: nil means success expected; otherwise errors.Is or substring.
		wantErr     error
		wantSubstr  string
		wantRetries bool
		check       func(t *testing.T, r faultRun)
	}{
		// talos.maintenance
		{point: FaultMaintenance, fault: emulator.Fault{Kind: emulator.Error}, from: -1, run: waitMaint, wantSubstr: "emulated failure"},
		{point: FaultMaintenance, fault: emulator.Fault{Kind: emulator.Unavailable, Times: 2}, from: -1, run: waitMaint, wantRetries: true},
		{point: FaultMaintenance, fault: emulator.Fault{Kind: emulator.RateLimit, Times: 1}, from: -1, run: waitMaint, wantRetries: true},
		{point: FaultMaintenance, fault: emulator.Fault{Kind: emulator.Hang, Times: 1}, from: -1, run: waitMaint, wantRetries: true},
		{point: FaultMaintenance, fault: emulator.Fault{Kind: emulator.Never}, from: -1, run: withTimeout(short, waitMaint), wantErr: wait.ErrTimeout,
			check: func(t *testing.T, r faultRun) { mustMode(t, r.n, ModeBooting) }},

		// talos.apply
		{point: FaultApply, fault: emulator.Fault{Kind: emulator.Error}, from: stageMaintenance, run: applyInsecure, wantSubstr: "emulated failure",
			check: func(t *testing.T, r faultRun) { mustApplied(t, r.n, 0) }},
		{point: FaultApply, fault: emulator.Fault{Kind: emulator.Unavailable, Times: 1}, from: stageMaintenance, run: applyThenMTLS, wantRetries: true},
		{point: FaultApply, fault: emulator.Fault{Kind: emulator.RateLimit, Times: 1}, from: stageMaintenance, run: applyThenMTLS, wantRetries: true},
		{point: FaultApply, fault: emulator.Fault{Kind: emulator.Hang, Times: 1}, from: stageMaintenance, run: applyThenMTLS, wantRetries: true},
		// The node says "applied" but stays in maintenance mode: that is
		// "not yet" until the wait's deadline, then a clear failure.
		// Several probe attempts must fit in the deadline (each may take up
		// to the 400ms attempt timeout on a loaded machine).
		{point: FaultApply, fault: emulator.Fault{Kind: emulator.Never}, from: stageMaintenance, run: withTimeout(4*short, applyThenMTLS), wantErr: ErrStillMaintenance,
			wantSubstr: "never went down to reboot"},

		// Maintenance mode outlives the apply for many probe intervals:
		// the probes meet the maintenance certificate, and wait.
		{point: FaultMaintenance, fault: emulator.Fault{Kind: emulator.Linger}, from: stageMaintenance, run: applyThenMTLS,
			check: func(t *testing.T, r faultRun) {
				states, _ := r.rec.snapshot()
				if !slices.Contains(states, StateStillMaintenance) {
					t.Fatalf("states %q: the lingering maintenance API was never seen", states)
				}
				mustMode(t, r.n, ModeConfigured)
			}},

		// talos.reboot
		{point: FaultReboot, fault: emulator.Fault{Kind: emulator.Never}, from: stageMaintenance, run: withTimeout(short, applyThenMTLS), wantErr: wait.ErrTimeout,
			check: func(t *testing.T, r faultRun) { mustMode(t, r.n, ModeRebooting) }},
		{point: FaultReboot, fault: emulator.Fault{Kind: emulator.Error}, from: stageMaintenance, run: applyThenMTLS, wantErr: ErrStillMaintenance},
		{point: FaultReboot, fault: emulator.Fault{Kind: emulator.Unavailable}, from: stageMaintenance, run: applyThenMTLS},

		// talos.bootstrap
		{point: FaultBootstrap, fault: emulator.Fault{Kind: emulator.Error}, from: stageConfigured, run: bootstrap, wantSubstr: "emulated failure",
			check: func(t *testing.T, r faultRun) { mustBootstraps(t, r.n, 0) }},
		{point: FaultBootstrap, fault: emulator.Fault{Kind: emulator.Unavailable, Times: 2}, from: stageConfigured, run: bootstrap, wantRetries: true,
			check: func(t *testing.T, r faultRun) { mustBootstraps(t, r.n, 1) }},
		{point: FaultBootstrap, fault: emulator.Fault{Kind: emulator.RateLimit, Times: 1}, from: stageConfigured, run: bootstrap, wantRetries: true},
		{point: FaultBootstrap, fault: emulator.Fault{Kind: emulator.Hang, Times: 1}, from: stageConfigured, run: bootstrap, wantRetries: true},
		{point: FaultBootstrap, fault: emulator.Fault{Kind: emulator.Never}, from: stageConfigured, run: withTimeout(short, bootstrap), wantErr: wait.ErrTimeout,
			wantSubstr: "etcd not ready for bootstrap"},

		// talos.services
		{point: FaultServices, fault: emulator.Fault{Kind: emulator.Never}, from: stageBootstrapped, run: withTimeout(short, services), wantErr: wait.ErrTimeout,
			wantSubstr: "etcd: Running/unhealthy"},
		{point: FaultServices, fault: emulator.Fault{Kind: emulator.Error}, from: stageBootstrapped, run: services, wantErr: ErrServiceFailed},
		{point: FaultServices, fault: emulator.Fault{Kind: emulator.Unavailable, Times: 1}, from: stageBootstrapped, run: services, wantRetries: true},
		{point: FaultServices, fault: emulator.Fault{Kind: emulator.RateLimit, Times: 2}, from: stageBootstrapped, run: services, wantRetries: true},
		{point: FaultServices, fault: emulator.Fault{Kind: emulator.Hang, Times: 1}, from: stageBootstrapped, run: services, wantRetries: true},

		// talos.lockdown
		{point: FaultLockdown, fault: emulator.Fault{Kind: emulator.Error}, from: stageHealthy, run: lockdown(false), wantSubstr: "emulated failure",
			check: func(t *testing.T, r faultRun) { mustPorts(t, r, true) }},
		{point: FaultLockdown, fault: emulator.Fault{Kind: emulator.RateLimit, Times: 1}, from: stageHealthy, run: lockdown(true), wantRetries: true,
			check: func(t *testing.T, r faultRun) { mustPorts(t, r, false) }},
		{point: FaultLockdown, fault: emulator.Fault{Kind: emulator.Unavailable}, from: stageHealthy, run: lockdown(true),
			check: func(t *testing.T, r faultRun) { mustPorts(t, r, false) }},
		{point: FaultLockdown, fault: emulator.Fault{Kind: emulator.Hang}, from: stageHealthy, run: lockdown(true),
			check: func(t *testing.T, r faultRun) { mustPorts(t, r, false) }},
		// The node claims success but keeps the old firewall: only the
		// probe afterwards can tell.
		{point: FaultLockdown, fault: emulator.Fault{Kind: emulator.Never}, from: stageHealthy, run: lockdown(true),
			check: func(t *testing.T, r faultRun) { mustPorts(t, r, true) }},

		// talos.kubeconfig
		{point: FaultKubeconfig, fault: emulator.Fault{Kind: emulator.Error}, from: stageBootstrapped, run: fetchKubeconfig, wantSubstr: "emulated failure"},
		{point: FaultKubeconfig, fault: emulator.Fault{Kind: emulator.Unavailable, Times: 2}, from: stageBootstrapped, run: fetchKubeconfig, wantRetries: true},
		{point: FaultKubeconfig, fault: emulator.Fault{Kind: emulator.RateLimit, Times: 1}, from: stageBootstrapped, run: fetchKubeconfig, wantRetries: true},
		{point: FaultKubeconfig, fault: emulator.Fault{Kind: emulator.Hang, Times: 1}, from: stageBootstrapped, run: fetchKubeconfig, wantRetries: true},
		{point: FaultKubeconfig, fault: emulator.Fault{Kind: emulator.Unavailable}, from: stageBootstrapped, run: withTimeout(short, fetchKubeconfig),
			wantSubstr: "emulated outage", wantRetries: true},
	}
	for _, tt := range tests {
		t.Run(tt.point+"="+tt.fault.String(), func(t *testing.T) {
			t.Parallel()
			fx := testFixture(t)
			faults := emulator.NewFaults()
			if tt.from < 0 {
				faults.Set(tt.point, tt.fault)
			}
			n := fastNode(t, faults)
			rec := &recorder{}
			r := faultRun{n: n, c: newTestClient(n, rec), rec: rec, fx: fx}
			ctx := testCtx(t, 10*time.Second)
			if tt.from >= 0 {
				drive(t, ctx, r.c, n, fx, tt.from)
				faults.Set(tt.point, tt.fault)
			}
			err := tt.run(ctx, r)
			switch {
			case tt.wantErr == nil && tt.wantSubstr == "":
				if err != nil {
					t.Fatalf("err = %v, want success", err)
				}
			default:
				if err == nil {
					t.Fatalf("err = nil, want %v %q", tt.wantErr, tt.wantSubstr)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if tt.wantSubstr != "" && !strings.Contains(err.Error(), tt.wantSubstr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantSubstr)
				}
			}
			if _, retries := rec.snapshot(); tt.wantRetries && len(retries) == 0 {
				t.Fatal("no retry was reported")
			}
			if faults.Fired(tt.point) == 0 && tt.fault.Kind != emulator.Never {
				t.Fatalf("fault %s never fired", tt.point)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func withTimeout(d time.Duration, run func(context.Context, faultRun) error) func(context.Context, faultRun) error {
	return func(ctx context.Context, r faultRun) error {
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return run(ctx, r)
	}
}

func waitMaint(ctx context.Context, r faultRun) error {
	return r.c.WaitMaintenance(ctx, r.ip(), r.rec.opts())
}

func applyInsecure(ctx context.Context, r faultRun) error {
	return r.c.ApplyInsecure(ctx, r.ip(), r.fx.open)
}

func applyThenMTLS(ctx context.Context, r faultRun) error {
	if err := applyInsecure(ctx, r); err != nil {
		return err
	}
	return r.c.WaitMTLS(ctx, r.ip(), r.fx.talosconfig, r.rec.opts())
}

func bootstrap(ctx context.Context, r faultRun) error {
	return r.c.Bootstrap(ctx, r.ip(), r.fx.talosconfig, r.rec.opts())
}

func services(ctx context.Context, r faultRun) error {
	return r.c.WaitServices(ctx, r.ip(), r.fx.talosconfig, nil, r.rec.opts())
}

// fetchKubeconfig downloads the kubeconfig and insists it is a complete one.
func fetchKubeconfig(ctx context.Context, r faultRun) error {
	raw, err := r.c.Kubeconfig(ctx, r.ip(), r.fx.talosconfig)
	if err != nil {
		return err
	}
	kc, err := parseKubeconfig(raw)
	if err != nil {
		return err
	}
	if kc.CurrentContext == "" || len(kc.Users) != 1 || kc.Users[0].User.ClientKeyData == "" {
		return fmt.Errorf("incomplete kubeconfig: context %q, %d users", kc.CurrentContext, len(kc.Users))
	}
	return nil
}

func lockdown(wantApplied bool) func(context.Context, faultRun) error {
	return func(ctx context.Context, r faultRun) error {
		applied, err := r.c.ApplySecure(ctx, r.ip(), r.fx.talosconfig, r.fx.lockdown)
		if applied != wantApplied {
			return errors.Join(err, fmt.Errorf("applied = %v, want %v", applied, wantApplied))
		}
		return err
	}
}

func mustMode(t *testing.T, n *Node, want Mode) {
	t.Helper()
	if got := n.Mode(); got != want {
		t.Fatalf("mode = %s, want %s", got, want)
	}
}

func mustApplied(t *testing.T, n *Node, want int) {
	t.Helper()
	if got := len(n.AppliedConfigs()); got != want {
		t.Fatalf("applied configs = %d, want %d", got, want)
	}
}

func mustBootstraps(t *testing.T, n *Node, want int) {
	t.Helper()
	if got := n.BootstrapCount(); got != want {
		t.Fatalf("bootstraps = %d, want %d", got, want)
	}
}

func mustPorts(t *testing.T, r faultRun, wantOpen bool) {
	t.Helper()
	open, err := r.c.ProbePorts(testCtx(t, 2*time.Second), r.ip(), []int{ApidPort, KubeAPIPort})
	if err != nil {
		t.Fatalf("ProbePorts: %v", err)
	}
	if open[ApidPort] != wantOpen || open[KubeAPIPort] != wantOpen {
		t.Fatalf("ports open = %v, want %v", open, wantOpen)
	}
}
