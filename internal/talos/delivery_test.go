package talos

import (
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// A node booted from the install's config volume never serves maintenance
// mode: its first answer is mTLS with our CA, and the volume can be wiped.
func TestInstallConfigBootsConfigured(t *testing.T) {
	t.Parallel()
	fx := testFixture(t)
	n := fastNode(t, emulator.NewFaults(), func(o *NodeOptions) {
		o.InstallConfig, o.ConfigPartition = fx.open, "sda9"
	})
	c := newTestClient(n, nil)
	ctx := testCtx(t, 10*time.Second)
	ip := testPublicIP.String()
	if err := c.WaitMTLS(ctx, ip, fx.talosconfig, wait.Options{Interval: 5 * time.Millisecond}); err != nil {
		t.Fatalf("WaitMTLS: %v", err)
	}
	if got := n.Mode(); got != ModeConfigured {
		t.Fatalf("mode %s, want configured", got)
	}
	if n.ConfigVolume() != "sda9" {
		t.Fatalf("config volume %q, want sda9", n.ConfigVolume())
	}
	// The node never listened insecurely: a maintenance probe finds a node
	// that demands certificates, and it is ours, so it is not "foreign".
	if c.foreign(ctx, ip, mustParse(t, fx.talosconfig)) {
		t.Error("our own node was taken for a foreign one")
	}
	if err := c.WipeConfigVolume(ctx, ip, fx.talosconfig, "sda9"); err != nil {
		t.Fatalf("WipeConfigVolume: %v", err)
	}
	if n.ConfigVolume() != "" {
		t.Error("the config volume is still there after the wipe")
	}
	// Idempotent: a second wipe (an undo after a lost answer) succeeds.
	if err := c.WipeConfigVolume(ctx, ip, fx.talosconfig, "sda9"); err != nil {
		t.Fatalf("second WipeConfigVolume: %v", err)
	}
	// Anything else on the disk is in use and refused.
	if err := c.WipeConfigVolume(ctx, ip, fx.talosconfig, "sda"); err == nil {
		t.Error("wiping the install disk was accepted")
	}
}

// With the hijack fault a stranger configures the node the moment it enters
// maintenance mode: the maintenance probe must say so, not time out.
func TestHijackIsNamed(t *testing.T) {
	t.Parallel()
	fx := testFixture(t)
	faults := emulator.NewFaults()
	faults.Set(FaultMaintenance, emulator.Fault{Kind: Hijack})
	n := fastNode(t, faults)
	c := newTestClient(n, nil)
	ctx := testCtx(t, 20*time.Second)
	ip := testPublicIP.String()
	err := c.WaitMaintenance(ctx, ip, wait.Options{Interval: 5 * time.Millisecond})
	if !errors.Is(err, ErrForeignConfig) {
		t.Fatalf("WaitMaintenance on a hijacked node = %v, want ErrForeignConfig", err)
	}
	if !n.Hijacked() {
		t.Error("the emulator did not record the hijack")
	}
	// Our talosconfig cannot talk to it either, and WaitMTLS says why.
	err = c.WaitMTLS(ctx, ip, fx.talosconfig, wait.Options{Interval: 5 * time.Millisecond})
	if !errors.Is(err, ErrForeignConfig) {
		t.Fatalf("WaitMTLS on a hijacked node = %v, want ErrForeignConfig", err)
	}
}

func mustParse(t *testing.T, talosconfig []byte) *x509.CertPool {
	t.Helper()
	m, err := parseTalosconfig(talosconfig, testPublicIP.String())
	if err != nil {
		t.Fatal(err)
	}
	return m.tls.RootCAs
}
