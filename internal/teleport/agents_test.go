package teleport

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/wait"
)

func TestWaitNodeAndApp(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{})
	c := connect(t, e, Config{})
	ctx := testCtx(t, 20*time.Second)
	opts := wait.Options{Interval: 5 * time.Millisecond}

	short := testCtx(t, 100*time.Millisecond)
	if err := c.WaitNode(short, "pve-demo", opts); err == nil || !strings.Contains(err.Error(), "SSH node pve-demo") {
		t.Errorf("no node registered: %v", err)
	}
	go func() {
		_ = e.RegisterNode("pve-demo")
		_ = e.RegisterApp("proxmox", "https://10.10.0.1:8006", "proxmox.example.com")
	}()
	if err := c.WaitNode(ctx, "pve-demo", opts); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitApp(ctx, "proxmox", opts); err != nil {
		t.Fatal(err)
	}
}

// An SSH node registers only with a token the CLI created for role Node
// under the name its config carries; an app only through a reverse tunnel.
func TestNodeJoinNeedsANodeTokenAndAppsATunnel(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{})
	c := connect(t, e, Config{})
	ctx := testCtx(t, 10*time.Second)
	name, err := NewTokenName()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.JoinNode(name, "pve-demo", nil); !errors.Is(err, ErrJoinRefused) {
		t.Fatalf("join before the token exists: %v", err)
	}
	kube := mustToken(t, c, time.Minute)
	if err := e.JoinNode(kube, "pve-demo", nil); !errors.Is(err, ErrJoinRefused) {
		t.Fatalf("join with a Kube token: %v", err)
	}
	if _, err := c.CreateNodeToken(ctx, "short", testCluster, time.Minute); err == nil {
		t.Fatal("a guessable node token name was accepted")
	}
	if _, err := c.CreateNodeToken(ctx, name, testCluster, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := e.JoinNode(name, "pve-demo", map[string]string{"rawkode-cloud/role": "proxmox-host"}); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitNode(ctx, "pve-demo", wait.Options{Interval: 5 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if err := e.ServeApp("proxmox", "https://10.10.0.1:8006", "proxmox.example.com", false); err == nil {
		t.Fatal("an app registered without a reverse tunnel")
	}
	if _, apps := e.NodesAndApps(); len(apps) != 0 {
		t.Fatalf("apps %v", apps)
	}
	if err := e.ServeApp("proxmox", "https://10.10.0.1:8006", "proxmox.example.com", true); err != nil {
		t.Fatal(err)
	}
	e.RemoveNode("pve-demo")
	e.RemoveApp("proxmox")
	if nodes, apps := e.NodesAndApps(); len(nodes)+len(apps) != 0 {
		t.Fatalf("left after removal: %v %v", nodes, apps)
	}
}
