// Package pipeline runs an ordered list of phases, keeps the undo stack, and
// turns every step into progress events. It knows nothing about Scaleway or
// Talos: provisioning and destruction are just lists of phases.
//
// Phases are what the user sees and what exit codes mean; the work inside
// them need not wait for its phase. A Work (work.go) names what it produces,
// waits for what it needs (Promises and other Work), pushes its own undo, and
// may be started ahead of the phase that collects it.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// Phase is one step of a pipeline.
type Phase interface {
	Title() string
	Run(ctx context.Context, r *Run) error
}

// PhaseFunc makes a Phase from a title and a function.
func PhaseFunc(title string, run func(ctx context.Context, r *Run) error) Phase {
	return funcPhase{title, run}
}

type funcPhase struct {
	title string
	run   func(context.Context, *Run) error
}

func (p funcPhase) Title() string                         { return p.title }
func (p funcPhase) Run(ctx context.Context, r *Run) error { return p.run(ctx, r) }

// Runner executes phases in order.
type Runner struct {
	Phases []Phase
	Sink   Sink
	// UndoTimeout bounds each cleanup step; zero means 15 minutes.
	UndoTimeout time.Duration
	// KeepOnFailure skips cleanup and lists what was kept.
	KeepOnFailure bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// PhaseTiming is how one phase went.
type PhaseTiming struct {
	Title    string
	Start    time.Time
	Duration time.Duration
	Status   string // ok, failed, skipped, not-run
	// AheadIn names the earlier phase during which this phase's work was
	// done in the background (empty when it did its work itself).
	AheadIn string
}

// Result describes a whole run.
type Result struct {
	Phases   []PhaseTiming
	Start    time.Time
	Duration time.Duration
}

// Failure is the error a failed run returns; its exit code follows from what
// happened to the resources.
type Failure struct {
	Phase       string
	Err         error
	Interrupted bool
	LeftRunning bool   // deliberately kept for debugging (exit 3)
	Kept        bool   // kept because of --keep-on-failure
	Hint        string // how to debug what was left running
	// Leftovers are resources that still exist: those that could not be
	// removed, or those kept on purpose.
	Leftovers []UndoStep
}

func (f *Failure) Error() string {
	msg := f.Err.Error()
	if f.Interrupted {
		// Whatever the phase was doing failed because it was stopped.
		msg = "interrupted"
		if f.Phase != "" {
			msg = "interrupted during " + f.Phase
		}
		return msg
	}
	if f.Phase != "" {
		msg = fmt.Sprintf("%s: %s", f.Phase, msg)
	}
	return msg
}

func (f *Failure) Unwrap() error { return f.Err }

// ExitCode says which documented exit code this failure means.
func (f *Failure) ExitCode() int {
	switch {
	case f.LeftRunning:
		return fail.LeftRunning
	case len(f.Leftovers) > 0:
		return fail.Incomplete
	case f.Interrupted:
		return fail.Interrupted
	case fail.ExitCode(f.Err) == fail.Incomplete:
		return fail.Incomplete
	case fail.IsUsage(f.Err):
		// A configuration problem found by a phase (phase 0 validates
		// before anything is created).
		return fail.Usage
	}
	return fail.Failed
}

// leaveRunning marks a failure after which nothing must be undone.
type leaveRunning struct {
	err  error
	hint string
}

func (l *leaveRunning) Error() string { return l.err.Error() }
func (l *leaveRunning) Unwrap() error { return l.err }

// LeaveRunning tells the runner not to undo anything for this failure: the
// resources stay for debugging (exit 3), and hint tells the user what to check.
func LeaveRunning(err error, hint string) error { return &leaveRunning{err: err, hint: hint} }

// Execute runs the phases. On failure or interruption it undoes what was
// created, newest first, and returns a *Failure wrapped with its exit code.
func (rn *Runner) Execute(ctx context.Context) (Result, error) {
	now := rn.Now
	if now == nil {
		now = time.Now
	}
	sink := rn.Sink
	if sink == nil {
		sink = Discard
	}
	run := &Run{sink: sink, now: now, undo: &undoStack{}}
	run.bgCtx, run.bgCancel = context.WithCancel(ctx)
	defer run.bgCancel()
	res := Result{Start: now()}
	titles := make([]string, len(rn.Phases))
	for i, p := range rn.Phases {
		titles[i] = p.Title()
		res.Phases = append(res.Phases, PhaseTiming{Title: p.Title(), Status: "not-run"})
	}
	run.emit(Event{Type: EventPlan, Fields: map[string]any{"phases": titles}})

	for i, p := range rn.Phases {
		if err := ctx.Err(); err != nil {
			res.Duration = now().Sub(res.Start)
			return res, rn.fail(ctx, run, p.Title(), err)
		}
		run.setPhase(p.Title())
		run.takeAhead()
		start := now()
		res.Phases[i].Start = start
		run.emit(Event{Type: EventPhaseStart, Fields: map[string]any{"index": i, "total": len(rn.Phases)}})
		err := safely(func() error { return p.Run(ctx, run) })
		d := now().Sub(start)
		res.Phases[i].Duration = d
		if err != nil {
			res.Phases[i].Status = "failed"
			msg := err.Error()
			if interrupted(ctx, err) {
				// "context canceled" is how Go says it, not what happened.
				msg = "interrupted"
			}
			run.emit(Event{Type: EventPhaseFailed, Message: msg, Fields: map[string]any{"duration": d.Seconds()}})
			res.Duration = now().Sub(res.Start)
			return res, rn.fail(ctx, run, p.Title(), err)
		}
		res.Phases[i].Status = "ok"
		ahead := run.takeAhead()
		if run.skipped != "" {
			res.Phases[i].Status = "skipped"
			run.emit(Event{Type: EventPhaseSkip, Message: run.skipped, Fields: map[string]any{"duration": d.Seconds()}})
			run.skipped = ""
			continue
		}
		fields := map[string]any{"duration": d.Seconds()}
		if ahead != "" {
			// Its work ran in the background during an earlier phase: say
			// so, or a 0.0s phase looks like one that did nothing.
			fields["ahead_in"] = ahead
			res.Phases[i].AheadIn = ahead
		}
		run.emit(Event{Type: EventPhaseDone, Fields: fields})
	}
	// Phases join what they start; anything still running is not needed.
	run.settle()
	res.Duration = now().Sub(res.Start)
	return res, nil
}

func (rn *Runner) fail(ctx context.Context, run *Run, phase string, err error) error {
	// Background work may still be creating something: stop it and wait, so
	// that whatever it created is on the undo stack before cleanup starts.
	run.settle()
	f := &Failure{Phase: phase, Err: err, Interrupted: interrupted(ctx, err)}
	var lr *leaveRunning
	switch {
	case errors.As(err, &lr):
		f.LeftRunning, f.Hint = true, lr.hint
		f.Leftovers = run.undo.drain()
		for _, st := range f.Leftovers {
			run.emit(Event{Type: EventKept, Message: "left in place for debugging", Fields: map[string]any{"resource": st.Resource, "command": st.Command}})
		}
	case rn.KeepOnFailure:
		f.Kept = true
		f.Leftovers = run.undo.drain()
		for _, st := range f.Leftovers {
			run.emit(Event{Type: EventKept, Message: "kept because of --keep-on-failure", Fields: map[string]any{"resource": st.Resource, "command": st.Command}})
		}
	default:
		f.Leftovers = rn.undo(ctx, run)
	}
	return fail.WithCode(f, f.ExitCode())
}

// interrupted reports whether err means the user stopped the run.
func interrupted(ctx context.Context, err error) bool {
	return errors.Is(ctx.Err(), context.Canceled) || errors.Is(err, context.Canceled)
}

// undo pops and runs every step newest first on a context that the user's
// Ctrl-C cannot cancel, keeps going past failures and returns what is left.
func (rn *Runner) undo(ctx context.Context, run *Run) []UndoStep {
	steps := run.undo.drain()
	if len(steps) == 0 {
		return nil
	}
	timeout := rn.UndoTimeout
	if timeout <= 0 {
		timeout = 15 * time.Minute
	}
	// Each step gets the whole budget: one hung removal (a DNS revert)
	// must not use up the time of the next (the billed server's delete).
	base := retry.WithBudget(context.WithoutCancel(ctx), timeout)
	run.setPhase("cleanup")
	run.emit(Event{Type: EventUndoStart, Fields: map[string]any{"steps": len(steps)}})
	var left []UndoStep
	for _, st := range steps {
		start := run.now()
		uctx, cancel := context.WithTimeout(base, timeout)
		err := safely(func() error { return st.Do(uctx) })
		cancel()
		fields := map[string]any{"resource": st.Resource, "ok": err == nil, "duration": run.now().Sub(start).Seconds()}
		if st.Undone != "" {
			fields["undone"] = st.Undone
		}
		if err != nil {
			fields["error"] = err.Error()
			left = append(left, st)
		}
		run.emit(Event{Type: EventUndoStep, Fields: fields})
	}
	for _, st := range left {
		run.emit(Event{Type: EventLeftover, Message: "could not be removed", Fields: map[string]any{"resource": st.Resource, "command": st.Command}})
	}
	run.emit(Event{Type: EventUndoDone, Fields: map[string]any{"remaining": len(left)}})
	return left
}

// safely turns a panic in phase or cleanup code into an error, so that a bug
// after something billable was created still leads to its removal (or to it
// being listed) instead of a crash that leaves it behind unreported.
func safely(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error (panic): %v", p)
		}
	}()
	return f()
}

// Run is what a phase gets to talk to the runner: the undo stack and events.
type Run struct {
	sink    Sink
	now     func() time.Time
	undo    *undoStack
	skipped string

	mu    sync.Mutex
	phase string
	ahead string // earlier phase whose background task did this phase's work
	// waited is set when the current phase awaited something itself: its
	// work was then not all done ahead of time.
	waited bool

	bgCtx    context.Context
	bgCancel context.CancelFunc
	tasks    sync.WaitGroup
}

func (r *Run) setPhase(p string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.phase = p
}

func (r *Run) currentPhase() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.phase
}

// Task is background work started by a phase.
type Task struct {
	done chan struct{}
	err  error
	run  *Run
	// phase is the phase that started the task.
	phase string
}

// inTask marks the context a task runs with, so that Wait can tell a phase
// collecting background work from one task waiting for another.
type inTask struct{}

// Go runs fn in the background so that work which does not depend on what
// the current phase awaits can overlap with it. The runner waits for every
// task before it undoes anything (a resource created in the background is
// on the undo stack before cleanup starts) and cancels their context on
// failure. A phase that needs the result calls Wait.
func (r *Run) Go(fn func(ctx context.Context) error) *Task {
	t := &Task{done: make(chan struct{}), run: r, phase: r.currentPhase()}
	r.tasks.Add(1)
	go func() {
		defer r.tasks.Done()
		defer close(t.done)
		t.err = safely(func() error { return fn(context.WithValue(r.bgCtx, inTask{}, true)) })
	}()
	return t
}

// Done runs fn now, in the caller's goroutine, and returns it as a finished
// task: the same code path for callers that choose not to overlap work.
func (r *Run) Done(fn func(ctx context.Context) error) *Task {
	t := &Task{done: make(chan struct{}), run: r, phase: r.currentPhase()}
	t.err = safely(func() error { return fn(context.WithValue(r.bgCtx, inTask{}, true)) })
	close(t.done)
	return t
}

// Wait returns the task's error once it has finished, or ctx's error.
//
// When a phase collects a task that an earlier phase started and that has
// already finished, the phase's work was done ahead of time, and its
// phase-done event says so (field ahead_in).
func (t *Task) Wait(ctx context.Context) error {
	if t.run != nil && ctx.Value(inTask{}) == nil {
		t.run.collecting(t, t.Finished())
	}
	select {
	case <-t.done:
		return t.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Finished reports whether the task has ended.
func (t *Task) Finished() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// collecting notes that the current phase collects t: work done ahead when
// an earlier phase started it and it had finished already, work the phase
// waited for otherwise.
func (r *Run) collecting(t *Task, finished bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !finished {
		r.waited = true
		return
	}
	if t.phase != "" && t.phase != r.phase && r.ahead == "" {
		r.ahead = t.phase
	}
}

// takeAhead returns and clears the earlier phase the current one's work
// was done in.
func (r *Run) takeAhead() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.ahead
	if r.waited {
		a = ""
	}
	r.ahead, r.waited = "", false
	return a
}

// settle cancels background tasks and waits for them.
func (r *Run) settle() {
	r.bgCancel()
	r.tasks.Wait()
}

// Undo registers the removal of something just created. Call it right after
// the creating call succeeded.
func (r *Run) Undo(st UndoStep) {
	r.undo.push(st)
	r.emit(Event{Type: EventCreated, Fields: map[string]any{"resource": st.Resource}})
}

// Removed drops the pending undo of resource (UndoStep.Resource): the run
// itself removed it on purpose (a replaced credential), so cleanup has
// nothing to do for it and must not list it as left behind.
func (r *Run) Removed(resource string) { r.undo.drop(resource) }

// PendingUndo is how many undo steps are registered.
func (r *Run) PendingUndo() int { return r.undo.len() }

// Skip marks the current phase as having nothing to do, with a reason.
func (r *Run) Skip(reason string) { r.skipped = reason }

// Info reports something worth seeing.
func (r *Run) Info(msg string, fields map[string]any) {
	r.emit(Event{Type: EventInfo, Message: msg, Fields: fields})
}

// Warn reports something the user should look at.
func (r *Run) Warn(msg string, fields map[string]any) {
	r.emit(Event{Type: EventWarn, Message: msg, Fields: fields})
}

// Emit sends a custom event (summary, inventory) stamped with the phase.
func (r *Run) Emit(e Event) { r.emit(e) }

func (r *Run) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	if e.Phase == "" {
		e.Phase = r.currentPhase()
	}
	r.sink.Emit(e)
}

// Wait announces a wait and returns the options that report its progress.
// Call Done on the returned waiter when the condition holds.
func (r *Run) Wait(what string, timeout, interval time.Duration) *Waiter {
	r.mu.Lock()
	r.waited = true
	r.mu.Unlock()
	w := &Waiter{run: r, what: what, timeout: timeout, interval: interval, start: r.now()}
	r.emit(Event{Type: EventWait, Fields: map[string]any{"wait": what, "timeout": timeout.Seconds()}})
	return w
}

// Waiter reports one wait's progress.
type Waiter struct {
	run      *Run
	what     string
	timeout  time.Duration
	interval time.Duration
	start    time.Time

	mu      sync.Mutex
	checked time.Time // when the latest check began (wait.Options.OnCheck)
}

// Options are the wait.Options that turn observed states and retries into events.
func (w *Waiter) Options() wait.Options {
	return wait.Options{Interval: w.interval, OnState: w.State, OnRetry: w.Retry, OnCheck: w.Checking}
}

// Checking notes that a check (or the stream that replaces polling) begins.
func (w *Waiter) Checking() {
	now := w.run.now()
	w.mu.Lock()
	w.checked = now
	w.mu.Unlock()
}

// State reports a newly observed state.
func (w *Waiter) State(s string) {
	w.run.emit(Event{Type: EventState, Fields: map[string]any{
		"wait": w.what, "state": s, "elapsed": w.run.now().Sub(w.start).Seconds(), "timeout": w.timeout.Seconds()}})
}

// Retry reports a transient failure being retried.
func (w *Waiter) Retry(a retry.Attempt) {
	w.run.emit(Event{Type: EventRetry, Message: a.Err.Error(), Fields: map[string]any{
		"wait": w.what, "attempt": a.N, "next": a.Next.Seconds()}})
}

// Done reports that the awaited condition holds. When the checks were
// reported (Checking), the event carries "checked": seconds from the wait's
// start to the start of the latest check, the one that saw the condition.
func (w *Waiter) Done() time.Duration {
	d := w.run.now().Sub(w.start)
	fields := map[string]any{"wait": w.what, "elapsed": d.Seconds()}
	w.mu.Lock()
	if !w.checked.IsZero() {
		fields["checked"] = w.checked.Sub(w.start).Seconds()
	}
	w.mu.Unlock()
	w.run.emit(Event{Type: EventWaitDone, Fields: fields})
	return d
}

// Context bounds ctx by the wait's timeout.
func (w *Waiter) Context(ctx context.Context) (context.Context, context.CancelFunc) {
	if w.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, w.timeout)
}
