package pipeline

import (
	"context"
	"sync"
)

// Promise is a value some work produces and other work needs: a server's
// address, a node's rendered config, the cluster's join token. Whoever needs
// it calls Get and blocks until it exists (or can never exist), so work that
// depends on it can be started before it is there and runs the moment it is.
type Promise[T any] struct {
	once sync.Once
	done chan struct{}
	v    T
	err  error
}

// NewPromise returns a promise nobody has kept yet.
func NewPromise[T any]() *Promise[T] { return &Promise[T]{done: make(chan struct{})} }

// Keep delivers the value; only the first Keep or Break counts.
func (p *Promise[T]) Keep(v T) { p.settle(v, nil) }

// Break says the value will never exist, and why.
func (p *Promise[T]) Break(err error) {
	var zero T
	p.settle(zero, err)
}

func (p *Promise[T]) settle(v T, err error) {
	p.once.Do(func() {
		p.v, p.err = v, err
		close(p.done)
	})
}

// Get waits for the value, or for ctx to end.
func (p *Promise[T]) Get(ctx context.Context) (T, error) {
	select {
	case <-p.done:
		return p.v, p.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// Peek returns the value if it was kept already.
func (p *Promise[T]) Peek() (T, bool) {
	select {
	case <-p.done:
		return p.v, p.err == nil
	default:
		var zero T
		return zero, false
	}
}

// Done is closed once the promise is kept or broken.
func (p *Promise[T]) Done() <-chan struct{} { return p.done }

// Work is one item of a run that produces a T. It states what it needs by
// calling Get on other work or promises, pushes the undo of whatever it
// creates itself, and may run ahead of the phase that shows it: Start puts it
// in the background as soon as its inputs are on their way, and the phase it
// belongs to collects it with Get (which runs it right there when nobody
// started it, so that a run without overlap executes the very same code).
type Work[T any] struct {
	// Name says what is produced ("join token", "config of sandbox-cp-1").
	Name string
	// Do produces the value.
	Do func(ctx context.Context, r *Run) (T, error)

	mu   sync.Mutex
	task *Task
	v    T
}

// Start runs the work in the background (once; later calls do nothing).
func (w *Work[T]) Start(r *Run) { w.start(r, true) }

// Get returns the work's value, running it in the caller's goroutine first
// when it was never started.
func (w *Work[T]) Get(ctx context.Context, r *Run) (T, error) {
	if err := w.start(r, false).Wait(ctx); err != nil {
		var zero T
		return zero, err
	}
	return w.v, nil
}

// Started reports whether the work was started (it may still be running).
func (w *Work[T]) Started() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.task != nil
}

func (w *Work[T]) start(r *Run, background bool) *Task {
	w.mu.Lock()
	if t := w.task; t != nil {
		w.mu.Unlock()
		return t
	}
	t := &Task{done: make(chan struct{}), run: r, phase: r.currentPhase()}
	w.task = t
	// Not held while running inline: work that Gets other work would
	// otherwise deadlock; the task set above keeps it from running twice.
	w.mu.Unlock()
	ctx := r.bgCtx
	if background {
		// Marked, so that the Gets inside it are not taken for the phase's.
		ctx = context.WithValue(ctx, inTask{}, true)
	}
	run := func() {
		defer close(t.done)
		t.err = safely(func() error {
			v, err := w.Do(ctx, r)
			w.v = v
			return err
		})
	}
	if !background {
		// The phase does this work itself, now: not ahead of time.
		r.mu.Lock()
		r.waited = true
		r.mu.Unlock()
		run()
		return t
	}
	r.tasks.Add(1)
	go func() {
		defer r.tasks.Done()
		run()
	}()
	return t
}

// Peek returns the work's value if it finished without error.
func (w *Work[T]) Peek() (T, bool) {
	w.mu.Lock()
	t := w.task
	w.mu.Unlock()
	if t == nil || !t.Finished() || t.err != nil {
		var zero T
		return zero, false
	}
	return w.v, true
}
