package report

import (
	"math"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/sandbox"
)

// A run at speed 100 whose chain is known: ordered 0.05 s in, the last
// event 0.12 s later than the model says, the run ending 0.01 s after it.
// The maintenance probe noticed 0.004 s after the node answered (0.003 s of
// it poll lag, the rest the probe's own round trip) and the apply took
// 0.002 s; the bootstrap's lag the chain had slack for.
func TestBreakdownSplitsPollLagFromRealTime(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	maint := at(10.75)
	cp := sandbox.CriticalPath{
		Total: 12 * time.Second, Replayed: 12*time.Second + 5*time.Millisecond,
		Ordered: at(0.05), End: at(12.05 + 0.011), EndsOK: true,
		Reactions: []sandbox.Reaction{
			{From: "maintenance", To: "taken", FromAt: maint, Observed: 6 * time.Millisecond, OnPath: 6 * time.Millisecond},
			{From: "etcd ready", To: "bootstrapped", FromAt: at(11.9), Observed: 8 * time.Millisecond},
		},
	}
	waits := []*waitSpan{
		// The maintenance probe: the condition at 10.75, the final check
		// from 10.753 to 10.754.
		{what: "maintenance", start: at(0.2), cond: maint, checked: at(10.753), done: at(10.754)},
		// A wait that does not say when its checks began: all its lag is
		// poll lag.
		{what: "etcd bootstrap", start: at(10.8), cond: at(11.9), done: at(11.908)},
	}
	parts, ok := breakdown(cp, waits, t0, at(12.071), 100)
	if !ok {
		t.Fatal("breakdown refused a complete chain")
	}
	want := []struct {
		d, scaled, real float64
	}{
		{0.05, 0, 0.05},             // before the order: real
		{0.006, 0.003, 0.003 + 0.3}, // the probe's poll lag scales, its round trip and the apply do not
		{0, 0, 0},                   // the bootstrap: off the path
		{0.005, 0, 0.005},           // the emulators' lateness, counted once
		{0.01, 0, 0.01},             // after the last event
		{0, 0, 0},                   // 12.071 - 12 = 0.071 = 0.05 + 0.006 + 0.005 + 0.01
	}
	if len(parts) != len(want) {
		t.Fatalf("parts = %+v", parts)
	}
	var sum time.Duration
	for i, w := range want {
		p := parts[i]
		sum += p.d
		if !near(p.d.Seconds(), w.d) || !near(p.poll.Seconds(), w.scaled) || !near(p.real, w.real) {
			t.Errorf("%s: %v (scaled %v) → %.4f real, want %v (scaled %v) → %.4f", p.what, p.d, p.poll, p.real, w.d, w.scaled, w.real)
		}
	}
	if sum != at(12.071).Sub(t0)-cp.Total {
		t.Errorf("parts add up to %v, want wall - critical path = %v", sum, at(12.071).Sub(t0)-cp.Total)
	}
}

// A reaction that cost more than itself (its pod missed one of the agent's
// tries) counts the wait for the next try as sandbox time.
func TestBreakdownScalesAMissedTry(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cp := sandbox.CriticalPath{
		Total: time.Second, Replayed: time.Second, Ordered: t0, End: t0.Add(time.Second + 30*time.Millisecond), EndsOK: true,
		Reactions: []sandbox.Reaction{{From: "etcd ready", To: "bootstrapped", FromAt: t0.Add(500 * time.Millisecond),
			Observed: 2 * time.Millisecond, OnPath: 30 * time.Millisecond}},
	}
	waits := []*waitSpan{{what: "etcd bootstrap", start: t0.Add(400 * time.Millisecond), cond: t0.Add(500 * time.Millisecond),
		checked: t0.Add(501 * time.Millisecond), done: t0.Add(502 * time.Millisecond)}}
	parts, ok := breakdown(cp, waits, t0, t0.Add(time.Second+30*time.Millisecond), 100)
	if !ok {
		t.Fatal("breakdown refused a complete chain")
	}
	if p := parts[1]; !near(p.poll.Seconds(), 0.029) || !near(p.real, 0.001+2.9) {
		t.Errorf("%s: scaled %v, real %.4f; want 0.029 s scaled (1 ms poll lag + 28 ms to the next try), 2.901 real", p.what, p.poll, p.real)
	}
}

// Without the chain's ends on the timeline there is no breakdown.
func TestBreakdownNeedsTheChain(t *testing.T) {
	t.Parallel()
	if _, ok := breakdown(sandbox.CriticalPath{}, nil, time.Now(), time.Now(), 100); ok {
		t.Error("breakdown of an incomplete chain")
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }
