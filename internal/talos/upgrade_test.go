package talos

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

const upgradeImage = "factory.talos.dev/metal-installer/abc123:v1.12.5"

func TestUpgradeRebootsIntoTheNewVersion(t *testing.T) {
	t.Parallel()
	fx := testFixture(t)
	n := fastNode(t, nil)
	c := newTestClient(n, nil)
	ctx := testCtx(t, 10*time.Second)
	ip := testPublicIP.String()
	drive(t, ctx, c, n, fx, stageHealthy)

	cfg, err := c.ReadConfig(ctx, ip, fx.talosconfig)
	if err != nil || !bytes.Equal(cfg, fx.open) {
		t.Fatalf("ReadConfig = %d bytes, %v; want the applied config", len(cfg), err)
	}
	if err := c.Upgrade(ctx, ip, fx.talosconfig, upgradeImage); err != nil {
		t.Fatalf("Upgrade: %v", err)
	}
	rec := &recorder{}
	if err := c.WaitUpgraded(ctx, ip, fx.talosconfig, "v1.12.5", DefaultServices(), rec.opts()); err != nil {
		t.Fatalf("WaitUpgraded: %v", err)
	}
	states, _ := rec.snapshot()
	// The node went down on the way: the wait saw it unreachable or still
	// answering with the old version, never the new one at once.
	if len(states) < 2 {
		t.Fatalf("states = %q: the upgrade did not take the node through a reboot", states)
	}
	if n.Version() != "v1.12.5" || n.BootstrapCount() != 1 {
		t.Fatalf("after upgrade: version %s, bootstraps %d", n.Version(), n.BootstrapCount())
	}
	if got := n.Counters().Get("Upgrade"); got != 1 {
		t.Fatalf("Upgrade calls = %d", got)
	}
}

func TestUpgradeFaults(t *testing.T) {
	t.Parallel()
	fx := testFixture(t)
	ip := testPublicIP.String()
	for _, tc := range []struct {
		fault string
		check func(t *testing.T, n *Node, c *Client, err error)
	}{
		{"error", func(t *testing.T, n *Node, _ *Client, err error) {
			if err == nil || n.Version() != EmulatedTalosVersion {
				t.Fatalf("Upgrade = %v, version %s; want an error and no change", err, n.Version())
			}
		}},
		{"unavailable@2", func(t *testing.T, n *Node, c *Client, err error) {
			if err != nil {
				t.Fatalf("Upgrade = %v; want transient faults retried away", err)
			}
			if err := c.WaitUpgraded(testCtx(t, 5*time.Second), ip, fx.talosconfig, "v1.12.5", DefaultServices(), wait.Options{Interval: 5 * time.Millisecond}); err != nil {
				t.Fatalf("WaitUpgraded: %v", err)
			}
		}},
		{"never", func(t *testing.T, n *Node, c *Client, err error) {
			if err != nil {
				t.Fatalf("Upgrade = %v; want it acknowledged", err)
			}
			err = c.WaitUpgraded(testCtx(t, 300*time.Millisecond), ip, fx.talosconfig, "v1.12.5", DefaultServices(), wait.Options{Interval: 10 * time.Millisecond})
			if !errors.Is(err, wait.ErrTimeout) || n.Version() != EmulatedTalosVersion {
				t.Fatalf("WaitUpgraded = %v, version %s; want a timeout on the old version", err, n.Version())
			}
		}},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			t.Parallel()
			faults := emulator.NewFaults()
			n := fastNode(t, faults)
			c := newTestClient(n, nil)
			ctx := testCtx(t, 10*time.Second)
			drive(t, ctx, c, n, fx, stageHealthy)
			_, f, err := emulator.ParseFault(FaultUpgrade + "=" + tc.fault)
			if err != nil {
				t.Fatal(err)
			}
			faults.Set(FaultUpgrade, f)
			tc.check(t, n, c, c.Upgrade(ctx, ip, fx.talosconfig, upgradeImage))
		})
	}
}

func TestUpgradeRefusesAnUnhealthyEtcd(t *testing.T) {
	t.Parallel()
	fx := testFixture(t)
	faults := emulator.NewFaults()
	n := fastNode(t, faults)
	c := newTestClient(n, nil)
	ctx := testCtx(t, 10*time.Second)
	ip := testPublicIP.String()
	_, f, _ := emulator.ParseFault(FaultServices + "=never")
	faults.Set(FaultServices, f)
	drive(t, ctx, c, n, fx, stageBootstrapped)
	err := c.Upgrade(ctx, ip, fx.talosconfig, upgradeImage)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("all members must be healthy")) {
		t.Fatalf("Upgrade with etcd unhealthy = %v, want refused", err)
	}
	if err := c.Upgrade(ctx, ip, fx.talosconfig, "installer:latest"); err == nil {
		t.Fatal("Upgrade to an image without a version tag was accepted")
	}
}

// An API server that speaks only HTTP/1.1 and wants a client certificate
// (the sandbox's Kubernetes API) is open: the probe must not mistake an
// ALPN mismatch for a closed port, or a lockdown check would prove nothing.
func TestProbeSeesAnHTTP1KubeAPIOpen(t *testing.T) {
	t.Parallel()
	cert, err := leafCert(time.Now(), "kube-apiserver", []netip.Addr{testPublicIP}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"},
		ClientAuth: tls.RequireAnyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	c := New(Options{AttemptTimeout: 2 * time.Second, Dialer: func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}})
	open, err := c.ProbePorts(testCtx(t, 5*time.Second), testPublicIP.String(), []int{KubeAPIPort})
	if err != nil || !open[KubeAPIPort] {
		t.Fatalf("ProbePorts = %v, %v; want 6443 open", open, err)
	}
}
