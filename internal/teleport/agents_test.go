package teleport

import (
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
