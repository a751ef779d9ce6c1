package provision

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
	"github.com/rawkode/rawkode-cloud/internal/testwait"
)

// TestInterruptedOrderIsUndone: Ctrl-C while the API is still taking an
// order. Scaleway records the order after the CLI stopped waiting for the
// answer, so the server exists although the CLI never learnt its ID; the
// run's cleanup must find it by the order's tag and delete it, or it is
// billed until somebody notices.
func TestInterruptedOrderIsUndone(t *testing.T) {
	t.Parallel()
	d := time.Millisecond
	emu := scaleway.NewEmulator(scaleway.EmulatorOptions{Delays: &scaleway.Delays{AssignIP: d, Deliver: d, StartInstall: d, Install: d, Delete: d}})
	t.Cleanup(emu.Close)
	// The order is recorded 100 ms after it arrived; the CLI gives up
	// as soon as it arrives.
	emu.Faults().SetLatency(scaleway.FaultCreateServer, 100*time.Millisecond)
	client, err := scaleway.New(emu.Config())
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.New()
	cfg.Set(config.ServerPollInterval, "400ms", config.FromFlag, "")
	m := &metal{cfg: cfg, scw: client, cluster: "interrupted", sshKeys: []string{scaleway.SeedSSHKeyID}}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // Ctrl-C once the order reached the API
		deadline := time.Now().Add(10 * time.Second)
		for emu.Counters().Get("create-server") == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	spec := scaleway.ServerSpec{Name: "interrupted", OfferID: scaleway.CloudInitOfferID, OSID: scaleway.UbuntuOSID,
		Hostname: "interrupted", SSHKeyIDs: m.sshKeys, UserData: []byte("#cloud-config\n"),
		Tags: append(scaleway.ClusterTags("interrupted"), "node=interrupted")}
	rn := pipeline.Runner{Phases: []pipeline.Phase{pipeline.PhaseFunc("order", func(ctx context.Context, r *pipeline.Run) error {
		_, err := m.orderServer(ctx, r, spec)
		return err
	})}}
	_, err = rn.Execute(ctx)
	var f *pipeline.Failure
	if !errors.As(err, &f) {
		t.Fatalf("err = %v, want the run to fail", err)
	}
	if len(f.Leftovers) != 0 {
		t.Fatalf("cleanup left %v", f.Leftovers)
	}
	if n := emu.Counters().Get("create-server"); n != 1 {
		t.Fatalf("create-server calls = %d, want 1", n)
	}
	// The order lands after the run gave up on it; look once it has.
	testwait.For(t, 10*time.Second, "the interrupted order to land", func() bool { return emu.Orders() > 0 })
	if n := emu.Orders(); n != 1 {
		t.Fatalf("servers ordered = %d, want 1 (the order must land although nobody waits for its answer)", n)
	}
	if left := emu.Servers(); len(left) != 0 {
		t.Fatalf("after cleanup the API still holds %d server(s): %+v", len(left), left)
	}
}
