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
	// RealisticProfile's chain: maintenance at 1070 s, the apply answered
	// at once, the maintenance API lingers 3 s, the reboot takes 90 s:
	// configured at 1163 s, etcd healthy at 1198 s, then the Kubernetes
	// layer: node registered 1198 s, CNI pod running 1218 s, node Ready
	// 1223 s, the agent's pod running 1243 s. The agent tries from 1208 s
	// every AgentStart/4 (+1 ms of sandbox time each), so it joins on its
	// fourth retry, at 1253 s + 4 ms, and registers one heartbeat later.
	want := r.sb.Scaled(20*time.Minute+58*time.Second) + 4*time.Millisecond
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
	// Timers fire late, never early, but the replay takes the agent's
	// tries as they happened: a try that came late may now follow its pod
	// instead of preceding it, and the agent joins a retry period earlier.
	retry := r.sb.Scaled(45*time.Second) / 4
	if d := cp.Replayed - cp.Total; d < -retry || d > 250*time.Millisecond {
		t.Errorf("replayed critical path %v, the model's %v", cp.Replayed, cp.Total)
	}
	// The CLI's reactions are on the timeline, and the chain replayed with
	// them as observed ends where the run's last awaited event happened.
	if len(cp.Reactions) != 2 {
		t.Fatalf("reactions = %+v, want the apply and the bootstrap", cp.Reactions)
	}
	var onPath time.Duration
	for _, x := range cp.Reactions {
		// A reaction can cost more than itself: a pod it delays past one
		// of the agent's tries waits for the next.
		if x.Observed <= 0 || x.OnPath < 0 || x.OnPath > x.Observed+retry {
			t.Errorf("%s → %s: observed %v, on the path %v", x.From, x.To, x.Observed, x.OnPath)
		}
		onPath += x.OnPath
	}
	if !cp.EndsOK {
		t.Fatalf("the chain's ends are not on the timeline")
	}
	if d := cp.End.Sub(cp.Ordered) - cp.Replayed - onPath; d < -time.Millisecond || d > 20*time.Millisecond {
		t.Errorf("the run's last event came %v after the order; the replayed chain with the reactions says %v (+%v)",
			cp.End.Sub(cp.Ordered), cp.Replayed+onPath, d)
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
