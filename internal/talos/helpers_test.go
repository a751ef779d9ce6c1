package talos

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config/container"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	"github.com/siderolabs/talos/pkg/machinery/config/types/network"
	"github.com/siderolabs/talos/pkg/machinery/config/types/v1alpha1"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	"github.com/siderolabs/talos/pkg/machinery/nethelpers"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

var (
	testPublicIP   = netip.MustParseAddr("203.0.113.10")
	testOperatorIP = netip.MustParseAddr("198.51.100.7")
)

// fixture is one generated cluster identity shared by every test: the
// secrets bundle costs seconds of CPU, so it is made once per test binary.
type fixture struct {
	open        []byte // operator /32 may reach 50000 and 6443
	lockdown    []byte // only internal subnets may
	noDisk      []byte // fails the metal validator
	talosconfig []byte
	token       string // a secret inside the configs, to check errors never leak it
	clusterKey  string
}

var (
	fixtureOnce sync.Once
	fixtureVal  *fixture
	fixtureErr  error
)

func testFixture(t *testing.T) *fixture {
	t.Helper()
	fixtureOnce.Do(func() { fixtureVal, fixtureErr = makeFixture() })
	if fixtureErr != nil {
		t.Fatalf("generate fixture: %v", fixtureErr)
	}
	return fixtureVal
}

type ruleSpec struct {
	name    string
	port    uint16
	subnets []string
}

func makeFixture() (*fixture, error) {
	bundle, err := secrets.NewBundle(secrets.NewClock(), nil)
	if err != nil {
		return nil, err
	}
	operator := testOperatorIP.String() + "/32"
	gen := func(disk string, rules []ruleSpec) ([]byte, *generate.Input, error) {
		opts := []generate.Option{generate.WithSecretsBundle(bundle), generate.WithEndpointList([]string{testPublicIP.String()})}
		if disk != "" {
			opts = append(opts, generate.WithInstallDisk(disk))
		}
		in, err := generate.NewInput("emulated", "https://"+testPublicIP.String()+":6443", constants.DefaultKubernetesVersion, opts...)
		if err != nil {
			return nil, nil, err
		}
		cfg, err := in.Config(machine.TypeControlPlane)
		if err != nil {
			return nil, nil, err
		}
		if disk == "" {
			// generate defaults the install disk; a config without one is
			// what the metal validator must reject.
			cfg, err = cfg.PatchV1Alpha1(func(c *v1alpha1.Config) error {
				c.MachineConfig.MachineInstall.InstallDisk = ""
				return nil
			})
			if err != nil {
				return nil, nil, err
			}
		}
		docs := cfg.Documents()
		def := network.NewDefaultActionConfigV1Alpha1()
		def.Ingress = nethelpers.DefaultActionBlock
		docs = append(docs, def)
		for _, r := range rules {
			rule := network.NewRuleConfigV1Alpha1()
			rule.MetaName = r.name
			rule.PortSelector.Protocol = nethelpers.ProtocolTCP
			rule.PortSelector.Ports = network.PortRanges{{Lo: r.port, Hi: r.port}}
			for _, s := range r.subnets {
				rule.Ingress = append(rule.Ingress, network.IngressRule{Subnet: netip.MustParsePrefix(s)})
			}
			docs = append(docs, rule)
		}
		ctr, err := container.New(docs...)
		if err != nil {
			return nil, nil, err
		}
		b, err := ctr.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
		return b, in, err
	}
	openRules := []ruleSpec{
		{"apid-operator", ApidPort, []string{operator}},
		{"kube-operator", KubeAPIPort, []string{operator, "10.244.0.0/16"}},
	}
	lockRules := []ruleSpec{
		{"apid-internal", ApidPort, []string{"10.0.0.0/8"}},
		{"kube-internal", KubeAPIPort, []string{"10.244.0.0/16"}},
	}
	fx := &fixture{token: bundle.TrustdInfo.Token, clusterKey: bundle.Cluster.Secret}
	var in *generate.Input
	if fx.open, in, err = gen("/dev/sda", openRules); err != nil {
		return nil, err
	}
	if fx.lockdown, _, err = gen("/dev/sda", lockRules); err != nil {
		return nil, err
	}
	if fx.noDisk, _, err = gen("", openRules); err != nil {
		return nil, err
	}
	tc, err := in.Talosconfig()
	if err != nil {
		return nil, err
	}
	if fx.talosconfig, err = tc.Bytes(); err != nil {
		return nil, err
	}
	return fx, nil
}

// fastNode starts an emulated node with millisecond delays.
func fastNode(t *testing.T, faults *emulator.Faults, mutate ...func(*NodeOptions)) *Node {
	t.Helper()
	opts := NodeOptions{
		PublicIP:       testPublicIP,
		OperatorIP:     testOperatorIP,
		BootDelay:      20 * time.Millisecond,
		RebootDelay:    30 * time.Millisecond,
		EtcdReadyDelay: 30 * time.Millisecond,
		// Rude by default, like a real node: maintenance mode outlives
		// the apply by a few probe intervals.
		MaintenanceLinger: 20 * time.Millisecond,
		ServiceDelays: map[string]time.Duration{
			ServiceAPID: 10 * time.Millisecond, ServiceTrustd: 15 * time.Millisecond,
			ServiceKubelet: 20 * time.Millisecond, ServiceEtcd: 25 * time.Millisecond,
		},
		Faults: faults,
	}
	for _, m := range mutate {
		m(&opts)
	}
	n, err := NewNode(opts)
	if err != nil {
		t.Fatalf("NewNode: %v", err)
	}
	t.Cleanup(n.Close)
	return n
}

// recorder collects progress events of one call.
type recorder struct {
	mu      sync.Mutex
	states  []string
	retries []retry.Attempt
}

func (r *recorder) opts() wait.Options {
	return wait.Options{
		Interval: 10 * time.Millisecond,
		OnState: func(s string) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.states = append(r.states, s)
		},
		OnRetry: func(a retry.Attempt) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.retries = append(r.retries, a)
		},
	}
}

func (r *recorder) onRetry(a retry.Attempt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retries = append(r.retries, a)
}

func (r *recorder) snapshot() ([]string, []retry.Attempt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.states...), append([]retry.Attempt(nil), r.retries...)
}

func newTestClient(n *Node, rec *recorder) *Client {
	opts := Options{Dialer: n.Dialer(), AttemptTimeout: 400 * time.Millisecond, RetryInitial: 10 * time.Millisecond}
	if rec != nil {
		opts.OnRetry = rec.onRetry
	}
	return New(opts)
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

type stage int

const (
	stageMaintenance stage = iota
	stageConfigured
	stageBootstrapped
	stageHealthy
)

// drive takes a node through the provisioning steps up to s.
func drive(t *testing.T, ctx context.Context, c *Client, n *Node, fx *fixture, s stage) {
	t.Helper()
	ip := testPublicIP.String()
	if err := c.WaitMaintenance(ctx, ip, wait.Options{Interval: 5 * time.Millisecond}); err != nil {
		t.Fatalf("WaitMaintenance: %v", err)
	}
	if s == stageMaintenance {
		return
	}
	if err := c.ApplyInsecure(ctx, ip, fx.open); err != nil {
		t.Fatalf("ApplyInsecure: %v", err)
	}
	if err := c.WaitMTLS(ctx, ip, fx.talosconfig, wait.Options{Interval: 5 * time.Millisecond}); err != nil {
		t.Fatalf("WaitMTLS: %v", err)
	}
	if s == stageConfigured {
		return
	}
	if err := c.Bootstrap(ctx, ip, fx.talosconfig, wait.Options{Interval: 5 * time.Millisecond}); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	if s == stageBootstrapped {
		return
	}
	if err := c.WaitServices(ctx, ip, fx.talosconfig, nil, wait.Options{Interval: 5 * time.Millisecond}); err != nil {
		t.Fatalf("WaitServices: %v", err)
	}
}
