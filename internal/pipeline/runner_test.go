package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// clock is a manual clock: time only moves when a phase says so, which
// makes every duration in events and results exact.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// journal records what phases and undo steps did, in order.
type journal struct {
	mu      sync.Mutex
	entries []string
}

func (j *journal) add(s string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, s)
}

func (j *journal) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.entries...)
}

// step is a recording undo step; err is what its Do returns.
func (j *journal) step(name string, err error) pipeline.UndoStep {
	return pipeline.UndoStep{
		Resource: name,
		Command:  "remove " + name,
		Do: func(ctx context.Context) error {
			j.add("undo " + name)
			return err
		},
	}
}

// phase creates the named resources (registering their undo) and then
// returns err.
func (j *journal) phase(title string, clk *clock, creates []string, err error) pipeline.Phase {
	return pipeline.PhaseFunc(title, func(ctx context.Context, r *pipeline.Run) error {
		j.add("run " + title)
		for _, c := range creates {
			r.Undo(j.step(c, nil))
		}
		if clk != nil {
			clk.Advance(2 * time.Second)
		}
		return err
	})
}

func types(events []pipeline.Event) []pipeline.EventType {
	out := make([]pipeline.EventType, len(events))
	for i, e := range events {
		out[i] = e.Type
	}
	return out
}

func ofType(events []pipeline.Event, t pipeline.EventType) []pipeline.Event {
	var out []pipeline.Event
	for _, e := range events {
		if e.Type == t {
			out = append(out, e)
		}
	}
	return out
}

func failureOf(t *testing.T, err error) *pipeline.Failure {
	t.Helper()
	var f *pipeline.Failure
	if !errors.As(err, &f) {
		t.Fatalf("error %v (%T) is not a *pipeline.Failure", err, err)
	}
	return f
}

func resources(steps []pipeline.UndoStep) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Resource
	}
	return out
}

func TestPhasesRunInOrderWithTimings(t *testing.T) {
	t.Parallel()
	j, clk, rec := &journal{}, newClock(), &pipeline.Recorder{}
	rn := pipeline.Runner{
		Phases: []pipeline.Phase{j.phase("one", clk, nil, nil), j.phase("two", clk, []string{"server"}, nil), j.phase("three", clk, nil, nil)},
		Sink:   rec,
		Now:    clk.Now,
	}
	res, err := rn.Execute(context.Background())
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if got, want := j.get(), []string{"run one", "run two", "run three"}; !slices.Equal(got, want) {
		t.Errorf("journal = %v, want %v (success must not undo anything)", got, want)
	}
	wantTypes := []pipeline.EventType{
		pipeline.EventPlan,
		pipeline.EventPhaseStart, pipeline.EventPhaseDone,
		pipeline.EventPhaseStart, pipeline.EventCreated, pipeline.EventPhaseDone,
		pipeline.EventPhaseStart, pipeline.EventPhaseDone,
	}
	events := rec.Events()
	if got := types(events); !slices.Equal(got, wantTypes) {
		t.Errorf("events = %v, want %v", got, wantTypes)
	}
	if got := events[0].Fields["phases"]; !slices.Equal(got.([]string), []string{"one", "two", "three"}) {
		t.Errorf("plan phases = %v", got)
	}
	for i, e := range ofType(events, pipeline.EventPhaseDone) {
		if e.Fields["duration"] != 2.0 {
			t.Errorf("phase-done %d duration = %v, want 2 (seconds)", i, e.Fields["duration"])
		}
		if e.Phase != []string{"one", "two", "three"}[i] || e.Time.IsZero() {
			t.Errorf("phase-done %d = %+v, want the phase name and a time", i, e)
		}
	}
	for i, e := range ofType(events, pipeline.EventPhaseStart) {
		if e.Fields["index"] != i || e.Fields["total"] != 3 {
			t.Errorf("phase-start %d fields = %v", i, e.Fields)
		}
	}
	if res.Duration != 6*time.Second || len(res.Phases) != 3 {
		t.Fatalf("result = %+v, want 3 phases over 6s", res)
	}
	for i, p := range res.Phases {
		want := pipeline.PhaseTiming{Title: []string{"one", "two", "three"}[i], Start: res.Start.Add(time.Duration(2*i) * time.Second),
			Duration: 2 * time.Second, Status: "ok"}
		if p != want {
			t.Errorf("phase %d timing = %+v, want %+v", i, p, want)
		}
	}
}

func TestFailureUndoesNewestFirst(t *testing.T) {
	t.Parallel()
	j, clk, rec := &journal{}, newClock(), &pipeline.Recorder{}
	boom := errors.New("boom")
	rn := pipeline.Runner{
		Phases: []pipeline.Phase{
			j.phase("order", clk, []string{"server"}, nil),
			j.phase("dns", clk, []string{"firewall", "record"}, nil),
			j.phase("bootstrap", clk, []string{"token"}, boom),
			j.phase("never", clk, nil, nil),
		},
		Sink: rec, Now: clk.Now,
	}
	res, err := rn.Execute(context.Background())
	want := []string{"run order", "run dns", "run bootstrap", "undo token", "undo record", "undo firewall", "undo server"}
	if got := j.get(); !slices.Equal(got, want) {
		t.Errorf("journal = %v, want %v", got, want)
	}
	if code := fail.ExitCode(err); code != fail.Failed {
		t.Errorf("exit code = %d, want %d", code, fail.Failed)
	}
	f := failureOf(t, err)
	if f.Phase != "bootstrap" || !errors.Is(err, boom) || f.Interrupted || len(f.Leftovers) != 0 {
		t.Errorf("failure = %+v", f)
	}
	if err.Error() != "bootstrap: boom" {
		t.Errorf("error text = %q, want %q", err.Error(), "bootstrap: boom")
	}
	statuses := []string{}
	for _, p := range res.Phases {
		statuses = append(statuses, p.Status)
	}
	if !slices.Equal(statuses, []string{"ok", "ok", "failed", "not-run"}) {
		t.Errorf("statuses = %v", statuses)
	}
	events := rec.Events()
	failed := ofType(events, pipeline.EventPhaseFailed)
	if len(failed) != 1 || failed[0].Message != "boom" || failed[0].Phase != "bootstrap" || failed[0].Fields["duration"] != 2.0 {
		t.Errorf("phase-failed events = %+v", failed)
	}
	var undone []string
	for _, e := range ofType(events, pipeline.EventUndoStep) {
		undone = append(undone, e.Fields["resource"].(string))
		if e.Fields["ok"] != true || e.Phase != "cleanup" {
			t.Errorf("undo-step = %+v", e)
		}
	}
	if !slices.Equal(undone, []string{"token", "record", "firewall", "server"}) {
		t.Errorf("undo-step order = %v", undone)
	}
	if s := ofType(events, pipeline.EventUndoStart); len(s) != 1 || s[0].Fields["steps"] != 4 {
		t.Errorf("undo-start = %+v", s)
	}
	if d := ofType(events, pipeline.EventUndoDone); len(d) != 1 || d[0].Fields["remaining"] != 0 {
		t.Errorf("undo-done = %+v", d)
	}
	if len(ofType(events, pipeline.EventLeftover)) != 0 {
		t.Error("leftover events after a complete cleanup")
	}
}

func TestFailureWithNothingToUndo(t *testing.T) {
	t.Parallel()
	rec := &pipeline.Recorder{}
	rn := pipeline.Runner{Phases: []pipeline.Phase{pipeline.PhaseFunc("first", func(context.Context, *pipeline.Run) error {
		return errors.New("no credentials")
	})}, Sink: rec}
	_, err := rn.Execute(context.Background())
	if fail.ExitCode(err) != fail.Failed {
		t.Errorf("exit code = %d, want 1", fail.ExitCode(err))
	}
	if len(ofType(rec.Events(), pipeline.EventUndoStart)) != 0 {
		t.Error("cleanup announced with nothing to clean up")
	}
}

// TestInterruptMidPhase is the SIGINT case: the phase blocks until the
// context is cancelled, as a real wait does; cleanup must still run, on a
// context that is not cancelled and is bounded by the undo timeout.
func TestInterruptMidPhase(t *testing.T) {
	t.Parallel()
	j, rec := &journal{}, &pipeline.Recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	type undoCtx struct {
		err      error
		deadline time.Time
		ok       bool
	}
	seen := make(chan undoCtx, 2)
	probe := func(name string) pipeline.UndoStep {
		return pipeline.UndoStep{Resource: name, Command: "remove " + name, Do: func(uctx context.Context) error {
			j.add("undo " + name)
			dl, ok := uctx.Deadline()
			seen <- undoCtx{uctx.Err(), dl, ok}
			return nil
		}}
	}
	const undoTimeout = 7 * time.Minute
	rn := pipeline.Runner{
		Phases: []pipeline.Phase{
			pipeline.PhaseFunc("order", func(ctx context.Context, r *pipeline.Run) error {
				r.Undo(probe("server"))
				return nil
			}),
			pipeline.PhaseFunc("wait", func(ctx context.Context, r *pipeline.Run) error {
				r.Undo(probe("record"))
				close(started)
				<-ctx.Done()
				return fmt.Errorf("wait for install: %w", ctx.Err())
			}),
			j.phase("never", nil, nil, nil),
		},
		Sink: rec, UndoTimeout: undoTimeout,
	}
	go func() {
		<-started
		cancel() // Ctrl-C
	}()
	before := time.Now()
	_, err := rn.Execute(ctx)
	if got, want := j.get(), []string{"undo record", "undo server"}; !slices.Equal(got, want) {
		t.Errorf("journal = %v, want %v", got, want)
	}
	for range 2 {
		u := <-seen
		if u.err != nil {
			t.Errorf("undo ran on a cancelled context: %v", u.err)
		}
		if !u.ok || u.deadline.Before(before) || u.deadline.After(time.Now().Add(undoTimeout)) {
			t.Errorf("undo context deadline = %v (set %v), want within %v from now", u.deadline, u.ok, undoTimeout)
		}
	}
	if code := fail.ExitCode(err); code != fail.Interrupted {
		t.Errorf("exit code = %d, want %d", code, fail.Interrupted)
	}
	f := failureOf(t, err)
	if !f.Interrupted || f.Phase != "wait" || !errors.Is(err, context.Canceled) {
		t.Errorf("failure = %+v", f)
	}
}

func TestInterruptBetweenPhases(t *testing.T) {
	t.Parallel()
	j := &journal{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rn := pipeline.Runner{Phases: []pipeline.Phase{
		pipeline.PhaseFunc("order", func(ctx context.Context, r *pipeline.Run) error {
			j.add("run order")
			r.Undo(j.step("server", nil))
			cancel() // the signal lands just as the phase succeeds
			return nil
		}),
		j.phase("next", nil, nil, nil),
	}}
	res, err := rn.Execute(ctx)
	if got, want := j.get(), []string{"run order", "undo server"}; !slices.Equal(got, want) {
		t.Errorf("journal = %v, want %v", got, want)
	}
	if fail.ExitCode(err) != fail.Interrupted {
		t.Errorf("exit code = %d, want 130", fail.ExitCode(err))
	}
	if res.Phases[0].Status != "ok" || res.Phases[1].Status != "not-run" {
		t.Errorf("statuses = %+v", res.Phases)
	}
}

func TestAlreadyCancelledRunsNothing(t *testing.T) {
	t.Parallel()
	j := &journal{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rn := pipeline.Runner{Phases: []pipeline.Phase{j.phase("one", nil, nil, nil)}}
	_, err := rn.Execute(ctx)
	if len(j.get()) != 0 || fail.ExitCode(err) != fail.Interrupted {
		t.Errorf("journal %v, exit %d; want nothing run and 130", j.get(), fail.ExitCode(err))
	}
}

func TestFailingUndoStepDoesNotStopTheOthers(t *testing.T) {
	t.Parallel()
	j, rec := &journal{}, &pipeline.Recorder{}
	rn := pipeline.Runner{
		Phases: []pipeline.Phase{pipeline.PhaseFunc("create", func(ctx context.Context, r *pipeline.Run) error {
			r.Undo(j.step("server 42", nil))
			r.Undo(j.step("dns record 7", errors.New("cloudflare says 500")))
			r.Undo(j.step("token abc", nil))
			return errors.New("verification failed")
		})},
		Sink: rec,
	}
	_, err := rn.Execute(context.Background())
	if got, want := j.get(), []string{"undo token abc", "undo dns record 7", "undo server 42"}; !slices.Equal(got, want) {
		t.Errorf("journal = %v, want %v", got, want)
	}
	if code := fail.ExitCode(err); code != fail.Incomplete {
		t.Errorf("exit code = %d, want %d", code, fail.Incomplete)
	}
	f := failureOf(t, err)
	if got := resources(f.Leftovers); !slices.Equal(got, []string{"dns record 7"}) {
		t.Errorf("leftovers = %v", got)
	}
	left := ofType(rec.Events(), pipeline.EventLeftover)
	if len(left) != 1 || left[0].Fields["resource"] != "dns record 7" || left[0].Fields["command"] != "remove dns record 7" {
		t.Errorf("leftover events = %+v", left)
	}
	for _, e := range ofType(rec.Events(), pipeline.EventUndoStep) {
		if e.Fields["resource"] == "dns record 7" && (e.Fields["ok"] != false || e.Fields["error"] != "cloudflare says 500") {
			t.Errorf("failed undo-step = %+v", e)
		}
	}
	if d := ofType(rec.Events(), pipeline.EventUndoDone); len(d) != 1 || d[0].Fields["remaining"] != 1 {
		t.Errorf("undo-done = %+v", d)
	}
}

func TestInterruptWithFailingUndoIsIncomplete(t *testing.T) {
	t.Parallel()
	j := &journal{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rn := pipeline.Runner{Phases: []pipeline.Phase{pipeline.PhaseFunc("create", func(ctx context.Context, r *pipeline.Run) error {
		r.Undo(j.step("server", errors.New("still locked")))
		cancel()
		return ctx.Err()
	})}}
	_, err := rn.Execute(ctx)
	// Resources left behind matter more than how the run ended.
	if code := fail.ExitCode(err); code != fail.Incomplete {
		t.Errorf("exit code = %d, want %d", code, fail.Incomplete)
	}
}

func TestLeaveRunningSkipsUndo(t *testing.T) {
	t.Parallel()
	j, rec := &journal{}, &pipeline.Recorder{}
	cause := errors.New("kube agent never registered")
	rn := pipeline.Runner{
		Phases: []pipeline.Phase{
			j.phase("order", nil, []string{"server"}, nil),
			pipeline.PhaseFunc("verify", func(ctx context.Context, r *pipeline.Run) error {
				r.Undo(j.step("record", nil))
				return pipeline.LeaveRunning(cause, "check the agent with: kubectl -n teleport logs deploy/agent")
			}),
		},
		Sink: rec,
	}
	_, err := rn.Execute(context.Background())
	if got, want := j.get(), []string{"run order"}; !slices.Equal(got, want) {
		t.Errorf("journal = %v, want %v (nothing undone)", got, want)
	}
	if code := fail.ExitCode(err); code != fail.LeftRunning {
		t.Errorf("exit code = %d, want %d", code, fail.LeftRunning)
	}
	f := failureOf(t, err)
	if !f.LeftRunning || !strings.Contains(f.Hint, "kubectl -n teleport logs") || !errors.Is(err, cause) {
		t.Errorf("failure = %+v", f)
	}
	if got := resources(f.Leftovers); !slices.Equal(got, []string{"record", "server"}) {
		t.Errorf("leftovers = %v, want newest first", got)
	}
	if err.Error() != "verify: kube agent never registered" {
		t.Errorf("error text = %q", err.Error())
	}
	kept := ofType(rec.Events(), pipeline.EventKept)
	if len(kept) != 2 || kept[0].Fields["resource"] != "record" || kept[1].Fields["command"] != "remove server" {
		t.Errorf("kept events = %+v", kept)
	}
	if len(ofType(rec.Events(), pipeline.EventUndoStart)) != 0 {
		t.Error("cleanup started although the phase asked to leave everything running")
	}
}

func TestKeepOnFailureSkipsUndo(t *testing.T) {
	t.Parallel()
	j, rec := &journal{}, &pipeline.Recorder{}
	rn := pipeline.Runner{
		Phases:        []pipeline.Phase{j.phase("order", nil, []string{"server", "record"}, errors.New("boom"))},
		Sink:          rec,
		KeepOnFailure: true,
	}
	_, err := rn.Execute(context.Background())
	if got, want := j.get(), []string{"run order"}; !slices.Equal(got, want) {
		t.Errorf("journal = %v, want %v (nothing undone)", got, want)
	}
	f := failureOf(t, err)
	if !f.Kept || f.LeftRunning {
		t.Errorf("failure = %+v", f)
	}
	if got := resources(f.Leftovers); !slices.Equal(got, []string{"record", "server"}) {
		t.Errorf("kept = %v", got)
	}
	// Resources remain and are listed: that is exit 4, not 1 ("everything removed").
	if code := fail.ExitCode(err); code != fail.Incomplete {
		t.Errorf("exit code = %d, want %d", code, fail.Incomplete)
	}
	kept := ofType(rec.Events(), pipeline.EventKept)
	if len(kept) != 2 || !strings.Contains(kept[0].Message, "keep-on-failure") || kept[0].Fields["command"] != "remove record" {
		t.Errorf("kept events = %+v", kept)
	}
}

// TestUndoBoundedByTimeout: a step that hangs until its context ends must be
// cut off by UndoTimeout, reported as left behind, and not block the others.
func TestUndoBoundedByTimeout(t *testing.T) {
	t.Parallel()
	j := &journal{}
	rn := pipeline.Runner{
		Phases: []pipeline.Phase{pipeline.PhaseFunc("create", func(ctx context.Context, r *pipeline.Run) error {
			r.Undo(j.step("server", nil))
			r.Undo(pipeline.UndoStep{Resource: "stuck", Command: "remove stuck", Do: func(ctx context.Context) error {
				<-ctx.Done()
				return ctx.Err()
			}})
			return errors.New("boom")
		})},
		UndoTimeout: 20 * time.Millisecond,
	}
	done := make(chan error, 1)
	go func() { _, err := rn.Execute(context.Background()); done <- err }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("undo did not honour UndoTimeout")
	}
	f := failureOf(t, err)
	if got := resources(f.Leftovers); !slices.Equal(got, []string{"stuck"}) {
		t.Errorf("leftovers = %v", got)
	}
	if fail.ExitCode(err) != fail.Incomplete {
		t.Errorf("exit code = %d, want 4", fail.ExitCode(err))
	}
	// The step after the stuck one still ran (and failed fast on the expired
	// context only if it looks at it; this one does not).
	if got := j.get(); !slices.Equal(got, []string{"undo server"}) {
		t.Errorf("journal = %v", got)
	}
}

func TestDefaultUndoTimeout(t *testing.T) {
	t.Parallel()
	var remaining time.Duration
	rn := pipeline.Runner{Phases: []pipeline.Phase{pipeline.PhaseFunc("create", func(ctx context.Context, r *pipeline.Run) error {
		r.Undo(pipeline.UndoStep{Resource: "x", Do: func(ctx context.Context) error {
			dl, _ := ctx.Deadline()
			remaining = time.Until(dl)
			return nil
		}})
		return errors.New("boom")
	})}}
	_, _ = rn.Execute(context.Background())
	if remaining <= 14*time.Minute || remaining > 15*time.Minute {
		t.Errorf("default undo deadline is %v away, want about 15m", remaining)
	}
}

func TestSkip(t *testing.T) {
	t.Parallel()
	rec := &pipeline.Recorder{}
	rn := pipeline.Runner{Phases: []pipeline.Phase{
		pipeline.PhaseFunc("dns", func(ctx context.Context, r *pipeline.Run) error { r.Skip("Cloudflare not configured"); return nil }),
		pipeline.PhaseFunc("next", func(ctx context.Context, r *pipeline.Run) error { return nil }),
	}, Sink: rec}
	res, err := rn.Execute(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Phases[0].Status != "skipped" || res.Phases[1].Status != "ok" {
		t.Errorf("statuses = %+v", res.Phases)
	}
	skips := ofType(rec.Events(), pipeline.EventPhaseSkip)
	if len(skips) != 1 || skips[0].Message != "Cloudflare not configured" || skips[0].Phase != "dns" {
		t.Errorf("skip events = %+v", skips)
	}
	if len(ofType(rec.Events(), pipeline.EventPhaseDone)) != 1 {
		t.Error("the skipped phase also reported done, or the next did not")
	}
}

func TestWaiterEvents(t *testing.T) {
	t.Parallel()
	clk, rec := newClock(), &pipeline.Recorder{}
	var opts wait.Options
	rn := pipeline.Runner{Phases: []pipeline.Phase{pipeline.PhaseFunc("install", func(ctx context.Context, r *pipeline.Run) error {
		w := r.Wait("OS install", 45*time.Minute, 30*time.Second)
		opts = w.Options()
		clk.Advance(time.Minute)
		opts.OnState("installing")
		opts.OnRetry(retry.Attempt{N: 2, Err: errors.New("503 from API"), Next: 4 * time.Second})
		clk.Advance(10 * time.Minute)
		opts.OnCheck() // the check that sees it done begins
		clk.Advance(time.Minute)
		if d := w.Done(); d != 12*time.Minute {
			t.Errorf("Done() = %v, want 12m", d)
		}
		wctx, cancel := w.Context(ctx)
		defer cancel()
		if dl, ok := wctx.Deadline(); !ok || time.Until(dl) > 45*time.Minute {
			t.Errorf("wait context deadline = %v, %v", dl, ok)
		}
		r.Info("hello", map[string]any{"k": "v"})
		r.Warn("careful", nil)
		r.Emit(pipeline.Event{Type: pipeline.EventSummary, Message: "built"})
		return nil
	})}, Sink: rec, Now: clk.Now}
	if _, err := rn.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if opts.Interval != 30*time.Second {
		t.Errorf("Options().Interval = %v", opts.Interval)
	}
	events := rec.Events()
	want := []pipeline.EventType{pipeline.EventPlan, pipeline.EventPhaseStart, pipeline.EventWait, pipeline.EventState,
		pipeline.EventRetry, pipeline.EventWaitDone, pipeline.EventInfo, pipeline.EventWarn, pipeline.EventSummary, pipeline.EventPhaseDone}
	if got := types(events); !slices.Equal(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	check := func(e pipeline.Event, fields map[string]any) {
		t.Helper()
		if e.Phase != "install" {
			t.Errorf("%s event phase = %q", e.Type, e.Phase)
		}
		for k, v := range fields {
			if e.Fields[k] != v {
				t.Errorf("%s event field %s = %v, want %v", e.Type, k, e.Fields[k], v)
			}
		}
	}
	check(events[2], map[string]any{"wait": "OS install", "timeout": 2700.0})
	check(events[3], map[string]any{"wait": "OS install", "state": "installing", "elapsed": 60.0, "timeout": 2700.0})
	check(events[4], map[string]any{"wait": "OS install", "attempt": 2, "next": 4.0})
	check(events[5], map[string]any{"wait": "OS install", "elapsed": 720.0, "checked": 660.0})
	check(events[6], map[string]any{"k": "v"})
	if events[4].Message != "503 from API" {
		t.Errorf("retry message = %q", events[4].Message)
	}
}

func TestConcurrentUndoRegistration(t *testing.T) {
	t.Parallel()
	var count sync.Map
	rn := pipeline.Runner{Phases: []pipeline.Phase{pipeline.PhaseFunc("parallel", func(ctx context.Context, r *pipeline.Run) error {
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.Undo(pipeline.UndoStep{Resource: fmt.Sprint(i), Do: func(context.Context) error { count.Store(i, true); return nil }})
			}()
		}
		wg.Wait()
		if r.PendingUndo() != 50 {
			t.Errorf("PendingUndo = %d, want 50", r.PendingUndo())
		}
		return errors.New("boom")
	})}, Sink: &pipeline.Recorder{}}
	_, err := rn.Execute(context.Background())
	n := 0
	count.Range(func(any, any) bool { n++; return true })
	if n != 50 || fail.ExitCode(err) != fail.Failed {
		t.Errorf("undid %d of 50, exit %d", n, fail.ExitCode(err))
	}
}

func TestTee(t *testing.T) {
	t.Parallel()
	a, b := &pipeline.Recorder{}, &pipeline.Recorder{}
	pipeline.Tee(a, b, pipeline.Discard).Emit(pipeline.Event{Type: pipeline.EventInfo})
	if len(a.Events()) != 1 || len(b.Events()) != 1 {
		t.Error("Tee did not deliver to every sink")
	}
}

// TestPanicsStillUndo: a bug in a phase or in one undo step must not leave
// billed resources behind unlisted.
func TestPanicsStillUndo(t *testing.T) {
	t.Parallel()
	j := &journal{}
	rn := pipeline.Runner{Phases: []pipeline.Phase{pipeline.PhaseFunc("order", func(ctx context.Context, r *pipeline.Run) error {
		r.Undo(j.step("server", nil))
		r.Undo(pipeline.UndoStep{Resource: "record", Command: "remove record", Do: func(context.Context) error {
			var m map[string]int
			m["x"] = 1 // a bug in cleanup code
			return nil
		}})
		r.Undo(j.step("token", nil))
		var p *pipeline.Run
		p.Skip("nil pointer") // a bug in phase code
		return nil
	})}}
	_, err := rn.Execute(context.Background())
	if got, want := j.get(), []string{"undo token", "undo server"}; !slices.Equal(got, want) {
		t.Errorf("journal = %v, want %v", got, want)
	}
	f := failureOf(t, err)
	if !strings.Contains(err.Error(), "panic") || f.Phase != "order" {
		t.Errorf("error = %v", err)
	}
	if got := resources(f.Leftovers); !slices.Equal(got, []string{"record"}) {
		t.Errorf("leftovers = %v", got)
	}
	if fail.ExitCode(err) != fail.Incomplete {
		t.Errorf("exit code = %d, want 4", fail.ExitCode(err))
	}
}
