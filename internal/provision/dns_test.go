package provision

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/cloudflare"
	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

// TestDNSCreatedWhileTheRunFailsIsUndone: the DNS records are started
// ahead of their phase; the run fails while a create is in flight, after
// Cloudflare created the record but before its answer came back
// (cloudflare.upsert-record=lost). Cancelling the request loses the answer
// for good, so the record's undo must already be on the stack: cleanup
// finds it by name and address and the zone ends as it began.
func TestDNSCreatedWhileTheRunFailsIsUndone(t *testing.T) {
	t.Parallel()
	const token = "cf-test-token"
	emu := cloudflare.NewEmulator(cloudflare.EmulatorOptions{Token: token})
	t.Cleanup(emu.Close)
	emu.Faults().Set(cloudflare.FaultUpsertRecord, emulator.Fault{Kind: emulator.Lost})
	dns, err := cloudflare.New(cloudflare.Config{APIToken: token, ZoneID: cloudflare.DefaultZoneID, BaseURL: emu.URL(),
		// Only the run's failure ends the request.
		RequestTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}

	cfg := config.New()
	cfg.Set(config.ClusterName, "lost", config.FromFlag, "")
	cfg.Set(config.CloudflareDNSName, "k8s.example.com", config.FromFlag, "")
	cfg.Set(config.CloudflareZoneID, cloudflare.DefaultZoneID, config.FromFlag, "")
	p := New(Options{Config: cfg})
	p.dns = dns
	p.nodes[0].Address.Keep("192.0.2.10")

	failure := errors.New("the install failed")
	rn := pipeline.Runner{Phases: []pipeline.Phase{pipeline.PhaseFunc("wait", func(ctx context.Context, r *pipeline.Run) error {
		p.dnsRecords.Start(r)
		deadline := time.Now().Add(10 * time.Second)
		for len(emu.Records()) == 0 {
			if time.Now().After(deadline) {
				t.Error("the DNS create never reached Cloudflare")
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		return failure
	})}}
	_, err = rn.Execute(context.Background())
	var f *pipeline.Failure
	if !errors.As(err, &f) || !errors.Is(err, failure) {
		t.Fatalf("err = %v, want the run's failure", err)
	}
	if len(f.Leftovers) != 0 {
		t.Fatalf("cleanup left %+v", f.Leftovers)
	}
	if recs := emu.Records(); len(recs) != 0 {
		t.Fatalf("the zone still holds %+v after cleanup: the record whose answer was lost escaped the undo", recs)
	}
}
