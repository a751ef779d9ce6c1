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
	// RealisticProfile's chain: configured at 1160 s, etcd healthy at 1195 s,
	// then the Kubernetes layer: node registered 1195 s, CNI pod running
	// 1215 s, node Ready 1220 s, the agent's pod running 1240 s. The agent
	// tries from 1205 s every AgentStart/4 (+1 ms of sandbox time each), so
	// it joins on its fourth retry, at 1250 s + 4 ms, and registers one
	// heartbeat later.
	want := r.sb.Scaled(20*time.Minute+55*time.Second) + 4*time.Millisecond
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
