package pipeline_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

func TestWorkRunsOnceWhetherStartedAheadOrNot(t *testing.T) {
	t.Parallel()
	for _, ahead := range []bool{true, false} {
		var runs atomic.Int32
		addr := pipeline.NewPromise[string]()
		w := &pipeline.Work[string]{Name: "greeting", Do: func(ctx context.Context, _ *pipeline.Run) (string, error) {
			runs.Add(1)
			ip, err := addr.Get(ctx) // what the work needs
			return "hello " + ip, err
		}}
		var got string
		rn := pipeline.Runner{Phases: []pipeline.Phase{
			pipeline.PhaseFunc("start", func(_ context.Context, r *pipeline.Run) error {
				if ahead {
					w.Start(r)
					w.Start(r)
				}
				addr.Keep("192.0.2.1")
				return nil
			}),
			pipeline.PhaseFunc("collect", func(ctx context.Context, r *pipeline.Run) error {
				var err error
				got, err = w.Get(ctx, r)
				if _, err2 := w.Get(ctx, r); err2 != nil {
					return err2
				}
				return err
			}),
		}}
		if _, err := rn.Execute(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got != "hello 192.0.2.1" || runs.Load() != 1 {
			t.Errorf("ahead=%v: got %q after %d runs, want one run", ahead, got, runs.Load())
		}
		if v, ok := w.Peek(); !ok || v != got {
			t.Errorf("ahead=%v: Peek = %q, %v", ahead, v, ok)
		}
	}
}

// Work started ahead that is still waiting for an input when a later phase
// fails is cancelled, and what it created before is undone.
func TestWorkAheadIsCancelledAndUndoneOnFailure(t *testing.T) {
	t.Parallel()
	never := pipeline.NewPromise[int]()
	var undone atomic.Bool
	w := &pipeline.Work[int]{Name: "stuck", Do: func(ctx context.Context, r *pipeline.Run) (int, error) {
		r.Undo(pipeline.UndoStep{Resource: "thing", Do: func(context.Context) error { undone.Store(true); return nil }})
		return never.Get(ctx)
	}}
	boom := errors.New("boom")
	rn := pipeline.Runner{Phases: []pipeline.Phase{
		pipeline.PhaseFunc("start", func(_ context.Context, r *pipeline.Run) error { w.Start(r); return nil }),
		pipeline.PhaseFunc("fail", func(context.Context, *pipeline.Run) error { return boom }),
	}}
	done := make(chan error, 1)
	go func() { _, err := rn.Execute(context.Background()); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the run waited for work whose input never came")
	}
	if !undone.Load() {
		t.Error("what the work created was not undone")
	}
}

func TestPromiseBreak(t *testing.T) {
	t.Parallel()
	p := pipeline.NewPromise[int]()
	p.Break(errors.New("no address"))
	p.Keep(1) // too late: the first outcome counts
	if _, err := p.Get(context.Background()); err == nil {
		t.Fatal("a broken promise returned a value")
	}
	if _, ok := p.Peek(); ok {
		t.Fatal("Peek saw a value in a broken promise")
	}
}
