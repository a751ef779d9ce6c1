package cloudflare

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

// TestLostCreateAnswerIsRevertible: the create lands but its answer never
// comes back (emulator.Lost), and the caller gives up while waiting for it,
// as a run that fails elsewhere cancels the DNS work it started ahead of
// time. The Change handed out before the request went out must remove
// exactly the record that create made: not the record that was there
// before, not a record under another name.
func TestLostCreateAnswerIsRevertible(t *testing.T) {
	t.Parallel()
	emu, c := start(t, EmulatorOptions{}, func(cfg *Config) {
		// The caller's cancellation, not the attempt timeout, ends the wait.
		cfg.RequestTimeout = time.Minute
	})
	const name = "k8s.example.com"
	kept, err := emu.Seed(Record{ZoneID: DefaultZoneID, Name: name, Type: "A", Content: "192.0.2.10", TTL: 1})
	if err != nil {
		t.Fatal(err)
	}
	other, err := emu.Seed(Record{ZoneID: DefaultZoneID, Name: "www.example.com", Type: "A", Content: "192.0.2.11", TTL: 1})
	if err != nil {
		t.Fatal(err)
	}
	emu.Faults().Set(FaultUpsertRecord, emulator.Fault{Kind: emulator.Lost})

	ctx, cancel := context.WithCancel(ctxFor(t, 10*time.Second))
	var mu sync.Mutex
	var announced []Change
	errc := make(chan error, 1)
	go func() {
		_, err := c.SetA(ctx, name, []string{"192.0.2.10", "192.0.2.11"}, func(ch Change) {
			mu.Lock()
			defer mu.Unlock()
			announced = append(announced, ch)
		})
		errc <- err
	}()
	// Cancel once the record exists: the request is then in flight with
	// its answer withheld.
	deadline := time.Now().Add(5 * time.Second)
	for len(byName(emu.Records(), name)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the create never landed: %+v", emu.Records())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("SetA succeeded although its create's answer was lost and the caller gave up")
	}

	mu.Lock()
	defer mu.Unlock()
	if len(announced) != 1 || !announced[0].Created || announced[0].Current.Content != "192.0.2.11" {
		t.Fatalf("announced %+v before the requests, want one create of 192.0.2.11", announced)
	}
	revertCtx := ctxFor(t, 5*time.Second)
	if err := c.Revert(revertCtx, announced[0]); err != nil {
		t.Fatal(err)
	}
	left := emu.Records()
	if len(left) != 2 || !containsID(left, kept.ID) || !containsID(left, other.ID) {
		t.Fatalf("after revert: %+v; want exactly the two records that were there before", left)
	}
	// Undo may run twice.
	if err := c.Revert(revertCtx, announced[0]); err != nil {
		t.Fatalf("second revert: %v", err)
	}
}

// TestLostCreateAnswerIsAdopted: a lost answer with time to retry is no
// failure: the retry finds the record that landed and reports it created,
// with its ID, instead of creating a second one.
func TestLostCreateAnswerIsAdopted(t *testing.T) {
	t.Parallel()
	emu, c := start(t, EmulatorOptions{}, func(cfg *Config) { cfg.RequestTimeout = 200 * time.Millisecond })
	emu.Faults().Set(FaultUpsertRecord, emulator.Fault{Kind: emulator.Lost, Times: 1})
	ctx := ctxFor(t, 10*time.Second)
	var announced []Change
	chs, err := c.SetA(ctx, "k8s.example.com", []string{"192.0.2.10"}, func(ch Change) { announced = append(announced, ch) })
	if err != nil {
		t.Fatal(err)
	}
	if len(chs) != 1 || !chs[0].Created || chs[0].RecordID == "" || emu.Counters().Get("create-record") != 1 {
		t.Fatalf("changes %+v after %d creates; want one create, adopted with its ID", chs, emu.Counters().Get("create-record"))
	}
	if len(announced) != 1 {
		t.Fatalf("announced %d changes, want the one create", len(announced))
	}
	// Either Change undoes it: by ID, or by name and content.
	if err := c.Revert(ctx, announced[0]); err != nil {
		t.Fatal(err)
	}
	if recs := emu.Records(); len(recs) != 0 {
		t.Fatalf("records left after revert: %+v", recs)
	}
}

// TestLostUpdateAnswerIsRevertible: an update whose answer is lost has
// landed; the Change announced before it puts the old address back.
func TestLostUpdateAnswerIsRevertible(t *testing.T) {
	t.Parallel()
	emu, c := start(t, EmulatorOptions{}, func(cfg *Config) { cfg.RequestTimeout = 100 * time.Millisecond })
	old, err := emu.Seed(Record{ZoneID: DefaultZoneID, Name: "k8s.example.com", Type: "A", Content: "198.51.100.7", TTL: 1, Comment: "theirs"})
	if err != nil {
		t.Fatal(err)
	}
	emu.Faults().Set(FaultUpsertRecord, emulator.Fault{Kind: emulator.Lost})
	ctx := ctxFor(t, 10*time.Second)
	var announced []Change
	_, err = c.SetA(ctxFor(t, time.Second), "k8s.example.com", []string{"192.0.2.10"}, func(ch Change) { announced = append(announced, ch) })
	if err == nil {
		t.Fatal("SetA succeeded although every update answer was lost")
	}
	if got := emu.Records(); len(got) != 1 || got[0].Content != "192.0.2.10" {
		t.Fatalf("records %+v; want the update to have landed", got)
	}
	if len(announced) != 1 || announced[0].Previous == nil {
		t.Fatalf("announced %+v, want one update with the previous record", announced)
	}
	emu.Faults().Clear()
	if err := c.Revert(ctx, announced[0]); err != nil {
		t.Fatal(err)
	}
	if got := emu.Records(); len(got) != 1 || got[0].ID != old.ID || got[0].Content != old.Content || got[0].Comment != "theirs" {
		t.Fatalf("after revert: %+v; want %+v back", got, old)
	}
}
