package pipeline

import (
	"context"
	"sync"
)

// UndoStep removes one thing a phase created. It is pushed right after the
// call that created the resource, never later, so that nothing created can
// escape cleanup.
type UndoStep struct {
	// Resource names what is removed, with its exact ID ("Scaleway server 42 in fr-par-2").
	Resource string
	// Command tells a human how to remove it by hand if the step fails.
	Command string
	// Undone, when set, says what a successful Do did in the past tense
	// ("restored the A record … to 192.0.2.1"); empty means "removed <Resource>".
	Undone string
	// Do removes the resource; it must be idempotent (already gone = success).
	Do func(ctx context.Context) error
}

// undoStack is safe for concurrent pushes: phases may create things from
// parallel goroutines.
type undoStack struct {
	mu    sync.Mutex
	steps []UndoStep
}

func (s *undoStack) push(st UndoStep) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps = append(s.steps, st)
}

// drain returns the steps newest first and empties the stack.
func (s *undoStack) drain() []UndoStep {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]UndoStep, len(s.steps))
	for i, st := range s.steps {
		out[len(s.steps)-1-i] = st
	}
	s.steps = nil
	return out
}

// drop removes the pending step for resource, if any.
func (s *undoStack) drop(resource string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, st := range s.steps {
		if st.Resource == resource {
			s.steps = append(s.steps[:i], s.steps[i+1:]...)
			return
		}
	}
}

func (s *undoStack) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.steps)
}
