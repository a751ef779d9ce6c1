package pipeline

import (
	"sync"
	"time"
)

// EventType names what happened. The values are part of the JSON output
// contract: automation matches on them, so they never change meaning.
type EventType string

const (
	EventPlan        EventType = "plan"         // the phases about to run (fields: phases)
	EventPhaseStart  EventType = "phase-start"  // a phase began
	EventPhaseDone   EventType = "phase-done"   // a phase succeeded (fields: duration)
	EventPhaseFailed EventType = "phase-failed" // a phase failed (fields: duration, error)
	EventPhaseSkip   EventType = "phase-skip"   // a phase had nothing to do (message says why)
	EventWait        EventType = "wait"         // a wait began (fields: wait, timeout)
	EventState       EventType = "state"        // a newly observed state during a wait (fields: wait, state, elapsed, timeout)
	EventWaitDone    EventType = "wait-done"    // the awaited condition holds (fields: wait, elapsed, checked when known)
	EventRetry       EventType = "retry"        // a transient error is being retried (fields: attempt, error, next)
	EventInfo        EventType = "info"
	EventWarn        EventType = "warn"
	EventCreated     EventType = "created"    // a resource was created and its undo registered (fields: resource)
	EventUndoStart   EventType = "undo-start" // cleanup begins (fields: steps)
	EventUndoStep    EventType = "undo-step"  // one cleanup step ended (fields: resource, ok, error)
	EventUndoDone    EventType = "undo-done"  // cleanup ended (fields: remaining)
	EventKept        EventType = "kept"       // a resource deliberately left in place (fields: resource, command)
	EventLeftover    EventType = "leftover"   // a resource that could not be removed (fields: resource, command)
	EventResult      EventType = "result"     // the run ended (fields: exit_code, error)
	EventSummary     EventType = "summary"    // what was built (fields vary)
	EventInventory   EventType = "inventory"  // what the sandbox holds (fields vary)
)

// Event is one thing the user may want to see. Fields hold the details; the
// JSON renderer flattens them into the top-level object.
type Event struct {
	Type    EventType
	Time    time.Time
	Phase   string
	Message string
	Fields  map[string]any
}

// Sink receives events. Implementations must be safe for concurrent use:
// phases report waits from several goroutines.
type Sink interface {
	Emit(Event)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(Event)

// Emit calls f.
func (f SinkFunc) Emit(e Event) { f(e) }

// Discard drops every event.
var Discard Sink = SinkFunc(func(Event) {})

// Recorder keeps every event, for tests and reports.
type Recorder struct {
	mu     sync.Mutex
	events []Event
}

// Emit records e.
func (r *Recorder) Emit(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// Events returns a copy of everything recorded.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Tee sends every event to all sinks.
func Tee(sinks ...Sink) Sink {
	return SinkFunc(func(e Event) {
		for _, s := range sinks {
			s.Emit(e)
		}
	})
}
