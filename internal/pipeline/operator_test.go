package pipeline_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

// A phase that only collects work an earlier phase started in the
// background, finished by then, says where its work was done; a phase that
// waits for something itself, or collects a task still running, does not.
func TestPhaseDoneAheadOfTime(t *testing.T) {
	t.Parallel()
	var dns, slow *pipeline.Task
	release := make(chan struct{})
	rec := &pipeline.Recorder{}
	rn := pipeline.Runner{Sink: rec, Phases: []pipeline.Phase{
		pipeline.PhaseFunc("Wait for install", func(ctx context.Context, r *pipeline.Run) error {
			dns = r.Go(func(context.Context) error { return nil })
			slow = r.Go(func(context.Context) error { <-release; return nil })
			// A task waiting for another is not a phase collecting it.
			inner := r.Go(func(ctx context.Context) error { return dns.Wait(ctx) })
			return inner.Wait(ctx)
		}),
		pipeline.PhaseFunc("Update DNS", func(ctx context.Context, r *pipeline.Run) error { return dns.Wait(ctx) }),
		pipeline.PhaseFunc("Verify", func(ctx context.Context, r *pipeline.Run) error {
			w := r.Wait("agent", 0, 0)
			w.Done()
			return dns.Wait(ctx)
		}),
		pipeline.PhaseFunc("Generate config", func(ctx context.Context, r *pipeline.Run) error {
			close(release)
			return slow.Wait(ctx)
		}),
	}}
	res, err := rn.Execute(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"Wait for install": "", "Update DNS": "Wait for install", "Verify": "", "Generate config": ""}
	for _, e := range rec.Events() {
		if e.Type != pipeline.EventPhaseDone {
			continue
		}
		got, _ := e.Fields["ahead_in"].(string)
		if got != want[e.Phase] {
			t.Errorf("%s: ahead_in = %q, want %q", e.Phase, got, want[e.Phase])
		}
	}
	if res.Phases[1].AheadIn != "Wait for install" || res.Phases[2].AheadIn != "" {
		t.Errorf("result phases = %+v", res.Phases)
	}
}

// An interrupted run says "interrupted", not Go's "context canceled".
func TestInterruptionIsCalledThat(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	rec := &pipeline.Recorder{}
	rn := pipeline.Runner{Sink: rec, Phases: []pipeline.Phase{
		pipeline.PhaseFunc("Wait for install", func(ctx context.Context, r *pipeline.Run) error {
			cancel()
			<-ctx.Done()
			return ctx.Err()
		}),
	}}
	_, err := rn.Execute(ctx)
	if err == nil || err.Error() != "interrupted during Wait for install" {
		t.Errorf("error = %v", err)
	}
	for _, e := range ofType(rec.Events(), pipeline.EventPhaseFailed) {
		if e.Message != "interrupted" || strings.Contains(e.Message, "canceled") {
			t.Errorf("phase-failed message = %q", e.Message)
		}
	}
}

// What was kept for debugging is "left in place", whatever it is: a
// secret or a token is not "running".
func TestKeptIsNotCalledRunning(t *testing.T) {
	t.Parallel()
	rec := &pipeline.Recorder{}
	rn := pipeline.Runner{Sink: rec, Phases: []pipeline.Phase{
		pipeline.PhaseFunc("Verify", func(ctx context.Context, r *pipeline.Run) error {
			r.Undo(pipeline.UndoStep{Resource: "Infisical secrets KUBECONFIG", Command: "infisical secrets delete KUBECONFIG", Do: func(context.Context) error { return nil }})
			return pipeline.LeaveRunning(context.DeadlineExceeded, "look")
		}),
	}}
	_, _ = rn.Execute(context.Background())
	for _, e := range ofType(rec.Events(), pipeline.EventKept) {
		if strings.Contains(e.Message, "running") {
			t.Errorf("kept message = %q", e.Message)
		}
	}
}
