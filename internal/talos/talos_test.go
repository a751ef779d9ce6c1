package talos

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/rawkode/rawkode-cloud/internal/testwait"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

func TestFirewallAllowed(t *testing.T) {
	t.Parallel()
	op := netip.MustParseAddr("198.51.100.7")
	pod := netip.MustParseAddr("10.244.1.5")
	rule := func(port uint16, subnets ...string) FirewallRule {
		r := FirewallRule{Protocol: "tcp", Ports: [][2]uint16{{port, port}}}
		for _, s := range subnets {
			r.Subnets = append(r.Subnets, netip.MustParsePrefix(s))
		}
		return r
	}
	tests := []struct {
		name string
		fw   Firewall
		port int
		src  netip.Addr
		want bool
	}{
		{"no config accepts all", Firewall{}, 50000, op, true},
		{"accept: unrelated port passes", Firewall{DefaultAction: "accept", Rules: []FirewallRule{rule(6443, "198.51.100.7/32")}}, 50000, pod, true},
		{"accept: rule admits its subnet", Firewall{DefaultAction: "accept", Rules: []FirewallRule{rule(6443, "198.51.100.7/32")}}, 6443, op, true},
		// The trap DESIGN.md warns about: an operator-only 6443 rule under
		// default accept also cuts pods off the API server.
		{"accept: rule drops everyone else", Firewall{DefaultAction: "accept", Rules: []FirewallRule{rule(6443, "198.51.100.7/32")}}, 6443, pod, false},
		{"block: no rule drops", Firewall{DefaultAction: "block"}, 50000, op, false},
		{"block: rule admits", Firewall{DefaultAction: "block", Rules: []FirewallRule{rule(50000, "198.51.100.0/24")}}, 50000, op, true},
		{"block: other subnet drops", Firewall{DefaultAction: "block", Rules: []FirewallRule{rule(50000, "10.0.0.0/8")}}, 50000, op, false},
		{"block: except wins", Firewall{DefaultAction: "block", Rules: []FirewallRule{{
			Protocol: "tcp", Ports: [][2]uint16{{50000, 50000}},
			Subnets: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
			Except:  []netip.Prefix{netip.MustParsePrefix("198.51.100.7/32")},
		}}}, 50000, op, false},
		{"block: udp rule does not open tcp", Firewall{DefaultAction: "block", Rules: []FirewallRule{{
			Protocol: "udp", Ports: [][2]uint16{{50000, 50000}}, Subnets: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")},
		}}}, 50000, op, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.fw.Allowed(tt.port, tt.src); got != tt.want {
				t.Fatalf("Allowed(%d, %s) = %v, want %v", tt.port, tt.src, got, tt.want)
			}
		})
	}
}

func TestWaitMaintenanceReportsStates(t *testing.T) {
	t.Parallel()
	n := fastNode(t, nil, func(o *NodeOptions) { o.BootDelay = 80 * time.Millisecond })
	rec := &recorder{}
	c := newTestClient(n, rec)
	if err := c.WaitMaintenance(testCtx(t, 5*time.Second), testPublicIP.String(), rec.opts()); err != nil {
		t.Fatalf("WaitMaintenance: %v", err)
	}
	states, _ := rec.snapshot()
	want := []string{"unreachable (connection refused)", "maintenance"}
	if !slices.Equal(states, want) {
		t.Fatalf("states = %q, want %q", states, want)
	}
	if n.Mode() != ModeMaintenance {
		t.Fatalf("mode = %s", n.Mode())
	}
	if got := n.Counters().Get("Version"); got != 1 {
		t.Fatalf("Version calls = %d, want 1", got)
	}
}

// plaintextServer answers Version like a maintenance node, but without TLS:
// a client that ever talks plaintext would "detect" maintenance here.
type plaintextServer struct {
	machine.UnimplementedMachineServiceServer
	calls atomic.Int32
}

func (s *plaintextServer) Version(context.Context, *emptypb.Empty) (*machine.VersionResponse, error) {
	s.calls.Add(1)
	return nil, status.Error(codes.Unimplemented, "maintenance")
}

func TestWaitMaintenanceNeverUsesPlaintext(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	ps := &plaintextServer{}
	machine.RegisterMachineServiceServer(srv, ps)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	var dials atomic.Int32
	c := New(Options{AttemptTimeout: 200 * time.Millisecond, Dialer: func(ctx context.Context, _ string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}})
	err = c.WaitMaintenance(testCtx(t, 400*time.Millisecond), "192.0.2.1", wait.Options{Interval: 20 * time.Millisecond})
	if !errors.Is(err, wait.ErrTimeout) {
		t.Fatalf("err = %v, want timeout", err)
	}
	if dials.Load() == 0 {
		t.Fatal("client never dialled")
	}
	if got := ps.calls.Load(); got != 0 {
		t.Fatalf("plaintext server answered %d Version calls", got)
	}
}

func TestProvisionFlowAndLockdown(t *testing.T) {
	t.Parallel()
	fx := testFixture(t)
	n := fastNode(t, nil)
	var mu sync.Mutex
	var hooked [][]byte
	n.OnConfigured(func(cfg []byte) {
		mu.Lock()
		defer mu.Unlock()
		hooked = append(hooked, cfg)
	})
	c := newTestClient(n, nil)
	ctx := testCtx(t, 10*time.Second)
	ip := testPublicIP.String()

	drive(t, ctx, c, n, fx, stageBootstrapped)
	rec := &recorder{}
	if err := c.WaitServices(ctx, ip, fx.talosconfig, nil, rec.opts()); err != nil {
		t.Fatalf("WaitServices: %v", err)
	}
	states, retries := rec.snapshot()
	last := states[len(states)-1]
	if last != "etcd: Running/healthy, kubelet: Running/healthy, apid: Running/healthy, trustd: Running/healthy" {
		t.Fatalf("last state = %q (all: %q)", last, states)
	}
	if len(retries) != 0 {
		t.Fatalf("event stream fell back to polling: %v", retries)
	}
	if n.Counters().Get("Events") != 1 {
		t.Fatalf("Events calls = %d, want 1", n.Counters().Get("Events"))
	}

	ports := []int{ApidPort, KubeAPIPort}
	open, err := c.ProbePorts(ctx, ip, ports)
	if err != nil || !open[ApidPort] || !open[KubeAPIPort] {
		t.Fatalf("before lockdown: ProbePorts = %v, %v; want both open", open, err)
	}

	applied, err := c.ApplySecure(ctx, ip, fx.talosconfig, fx.lockdown)
	if err != nil || !applied {
		t.Fatalf("ApplySecure = %v, %v", applied, err)
	}
	open, err = c.ProbePorts(ctx, ip, ports)
	if err != nil || open[ApidPort] || open[KubeAPIPort] {
		t.Fatalf("after lockdown: ProbePorts = %v, %v; want both closed", open, err)
	}
	if n.Allowed(ApidPort, testOperatorIP) || !n.Allowed(ApidPort, netip.MustParseAddr("10.1.2.3")) {
		t.Fatalf("firewall after lockdown: %+v", n.Firewall())
	}
	if n.Mode() != ModeConfigured {
		t.Fatalf("lockdown rebooted the node: mode %s", n.Mode())
	}
	// Locked out for real: the next mTLS call cannot reach the node.
	err = c.WaitMTLS(testCtx(t, 200*time.Millisecond), ip, fx.talosconfig, wait.Options{Interval: 20 * time.Millisecond})
	if !errors.Is(err, wait.ErrTimeout) {
		t.Fatalf("WaitMTLS after lockdown = %v, want timeout", err)
	}

	// From the node itself (a hostNetwork pod's view) loopback is still
	// admitted: the same mTLS calls work through it.
	inside := New(Options{Dialer: func(ctx context.Context, addr string) (net.Conn, error) { return n.DialLoopback(ctx, ApidPort) },
		AttemptTimeout: 2 * time.Second, RetryInitial: 10 * time.Millisecond})
	if info, err := inside.Inspect(ctx, ip, fx.talosconfig); err != nil || info.Version == "" {
		t.Fatalf("Inspect over loopback after lockdown = %+v, %v", info, err)
	}
	if _, err := n.DialLoopback(ctx, KubeAPIPort); err == nil {
		t.Fatal("DialLoopback served a port other than the Talos API")
	}

	if got := len(n.AppliedConfigs()); got != 2 {
		t.Fatalf("AppliedConfigs = %d, want 2", got)
	}
	if n.BootstrapCount() != 1 {
		t.Fatalf("BootstrapCount = %d", n.BootstrapCount())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hooked) != 2 || string(hooked[1]) != string(fx.lockdown) {
		t.Fatalf("OnConfigured saw %d configs", len(hooked))
	}
}

func TestBootstrapWaitsForEtcdAndIsIdempotent(t *testing.T) {
	t.Parallel()
	fx := testFixture(t)
	n := fastNode(t, nil, func(o *NodeOptions) { o.EtcdReadyDelay = 150 * time.Millisecond })
	c := newTestClient(n, nil)
	ctx := testCtx(t, 10*time.Second)
	ip := testPublicIP.String()
	drive(t, ctx, c, n, fx, stageConfigured)

	rec := &recorder{}
	if err := c.Bootstrap(ctx, ip, fx.talosconfig, rec.opts()); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	states, _ := rec.snapshot()
	if !slices.Equal(states, []string{"etcd not ready for bootstrap", "bootstrapped"}) {
		t.Fatalf("states = %q", states)
	}
	rec2 := &recorder{}
	if err := c.Bootstrap(ctx, ip, fx.talosconfig, rec2.opts()); err != nil {
		t.Fatalf("second Bootstrap: %v", err)
	}
	if states, _ := rec2.snapshot(); !slices.Equal(states, []string{"already bootstrapped"}) {
		t.Fatalf("second states = %q", states)
	}
	if n.BootstrapCount() != 1 {
		t.Fatalf("BootstrapCount = %d, want 1", n.BootstrapCount())
	}
	if n.Counters().Get("Bootstrap") < 3 {
		t.Fatalf("Bootstrap calls = %d: FailedPrecondition was not retried", n.Counters().Get("Bootstrap"))
	}
}

func TestApplyRejectedByValidator(t *testing.T) {
	t.Parallel()
	fx := testFixture(t)
	n := fastNode(t, nil)
	c := newTestClient(n, nil)
	ctx := testCtx(t, 5*time.Second)
	drive(t, ctx, c, n, fx, stageMaintenance)

	err := c.ApplyInsecure(ctx, testPublicIP.String(), fx.noDisk)
	if err == nil || !strings.Contains(err.Error(), "InvalidArgument") {
		t.Fatalf("err = %v, want InvalidArgument", err)
	}
	if !strings.Contains(err.Error(), "install disk") {
		t.Fatalf("err = %v, want the validator's message", err)
	}
	if n.Mode() != ModeMaintenance || len(n.AppliedConfigs()) != 0 {
		t.Fatalf("rejected config taken: mode %s, %d applied", n.Mode(), len(n.AppliedConfigs()))
	}
	for _, secret := range []string{fx.token, fx.clusterKey} {
		if strings.Contains(err.Error(), secret) {
			t.Fatal("error leaks a secret of the config")
		}
	}
}

func TestErrorsNeverLeakTalosconfigSecrets(t *testing.T) {
	t.Parallel()
	const key = "SUPERSECRETKEYMATERIAL-4242"
	bad := []byte("context: x\ncontexts:\n  x:\n    endpoints: []\n    ca: bm90LWEtY2E=\n    crt: bm90LWEtY2VydA==\n    key: " + key + "\n")
	garbage := []byte("{{{" + key)
	c := New(Options{AttemptTimeout: 100 * time.Millisecond})
	ctx := testCtx(t, time.Second)
	for _, tc := range [][]byte{bad, garbage} {
		errs := []error{
			c.WaitMTLS(ctx, "192.0.2.1", tc, wait.Options{}),
			c.Bootstrap(ctx, "192.0.2.1", tc, wait.Options{}),
			c.WaitServices(ctx, "192.0.2.1", tc, nil, wait.Options{}),
		}
		_, kerr := c.Kubeconfig(ctx, "192.0.2.1", tc)
		errs = append(errs, kerr)
		_, err := c.ApplySecure(ctx, "192.0.2.1", tc, []byte("cfg"))
		errs = append(errs, err)
		for _, err := range errs {
			if err == nil || strings.Contains(err.Error(), key) {
				t.Fatalf("err = %v: want an error that does not quote the key", err)
			}
		}
	}
}

func TestDialerMapsOnlyThePublicIP(t *testing.T) {
	t.Parallel()
	n := fastNode(t, nil)
	testwait.For(t, 2*time.Second, "maintenance mode", func() bool { return n.Mode() == ModeMaintenance })
	d := n.Dialer()
	ctx := testCtx(t, time.Second)
	tests := []struct {
		addr   string
		wantOK bool
	}{
		{net.JoinHostPort(testPublicIP.String(), "50000"), true},
		{net.JoinHostPort(testPublicIP.String(), "6443"), false}, // kube-apiserver not up before config
		{net.JoinHostPort(testPublicIP.String(), "22"), false},
		{"192.0.2.99:50000", false},
	}
	for _, tt := range tests {
		conn, err := d(ctx, tt.addr)
		if (err == nil) != tt.wantOK {
			t.Fatalf("dial %s: err = %v, want ok=%v", tt.addr, err, tt.wantOK)
		}
		if conn != nil {
			conn.Close()
		}
	}
}

func TestWaitMaintenanceOnConfiguredNode(t *testing.T) {
	t.Parallel()
	fx := testFixture(t)
	n := fastNode(t, nil)
	c := newTestClient(n, nil)
	ctx := testCtx(t, 5*time.Second)
	drive(t, ctx, c, n, fx, stageConfigured)
	err := c.WaitMaintenance(ctx, testPublicIP.String(), wait.Options{Interval: 10 * time.Millisecond})
	if !errors.Is(err, ErrNotMaintenance) {
		t.Fatalf("err = %v, want ErrNotMaintenance", err)
	}
	if string(n.CurrentConfig()) != string(fx.open) {
		t.Fatal("CurrentConfig is not the applied config")
	}
}
