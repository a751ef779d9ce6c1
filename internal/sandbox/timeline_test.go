package sandbox_test

import (
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/sandbox"
)

// The critical path computed from the profile must match what the
// emulators report on their timeline, link by link (timers fire late, never
// early), and every wait of a provisioning must map to a timeline event.
func TestTimelineMatchesProfile(t *testing.T) {
	t.Parallel()
	r := provisionSandbox(t, runOpts{cluster: "timeline"})
	if r.err != nil {
		t.Fatalf("provision failed: %v\n%s", r.err, dump(r.events))
	}
	cp := r.sb.CriticalPath()
	want := r.sb.Scaled(20*time.Minute + 10*time.Second) // RealisticProfile's chain ends at 1210 s
	if cp.Total != want {
		t.Errorf("critical path = %v, want %v", cp.Total, want)
	}
	for _, g := range cp.Segments {
		if !g.ObservedOK {
			t.Errorf("%s → %s: not on the timeline", g.From, g.To)
			continue
		}
		if d := g.Observed - g.Model; d < -time.Millisecond || d > 250*time.Millisecond {
			t.Errorf("%s → %s: observed %v, profile says %v", g.From, g.To, g.Observed, g.Model)
		}
	}
	if cp.Replayed < cp.Total {
		t.Errorf("replayed critical path %v shorter than the model's %v", cp.Replayed, cp.Total)
	}
	tl := r.sb.Timeline()
	for _, e := range r.events {
		if e.Type != "wait" {
			continue
		}
		what, _ := e.Fields["wait"].(string)
		if _, ev, ok := sandbox.ConditionTime(tl, what); !ok && ev != "" {
			t.Errorf("wait %q: %s is not on the timeline", what, ev)
		} else if ev == "" {
			t.Errorf("wait %q maps to no timeline event", what)
		}
	}
}
