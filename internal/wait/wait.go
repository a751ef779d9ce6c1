// Package wait is the one polling loop every adapter uses to wait for an
// outside condition: it reports each observed state change, retries transient
// errors through the shared retry policy and stops at the caller's deadline.
package wait

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/retry"
)

// Options tune one wait. The zero value polls every second and reports nothing.
type Options struct {
	// Interval between two checks.
	Interval time.Duration
	// OnState is told every time the observed state differs from the last one.
	OnState func(state string)
	// OnRetry is told about every transient error that is being retried.
	OnRetry func(retry.Attempt)
	// OnCheck is told right before each check starts. The start of the check
	// that finally succeeds splits a wait's lag in two: before it the CLI sat
	// out its poll interval, after it the check's own round trip ran. A wait
	// that follows a stream calls it once, when the stream opens: from then
	// on every change is delivered, never polled for.
	OnCheck func()
}

// Checking reports to OnCheck when set.
func (o Options) Checking() {
	if o.OnCheck != nil {
		o.OnCheck()
	}
}

// State reports s to OnState when set.
func (o Options) State(s string) {
	if o.OnState != nil {
		o.OnState(s)
	}
}

// ErrTimeout is returned (wrapped) when the deadline passes before the condition holds.
var ErrTimeout = errors.New("timed out")

// Check looks once. done ends the wait successfully; state is what was seen
// (reported when it changes); a non-nil error ends the wait unless transient.
type Check func(ctx context.Context) (done bool, state string, err error)

// Until calls check every opts.Interval until it reports done, fails
// permanently, or ctx ends. what names the condition in errors
// ("OS install of server 42"). On timeout the last observed state is named.
func Until(ctx context.Context, what string, opts Options, check Check) error {
	interval := opts.Interval
	if interval <= 0 {
		interval = time.Second
	}
	last := ""
	var lastErr error
	attempt := 0
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return timeoutErr(ctx, what, last, lastErr)
		case <-t.C:
		}
		opts.Checking()
		done, state, err := check(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return timeoutErr(ctx, what, last, err)
			}
			transient, after := retry.Classify(err)
			if !transient {
				return err
			}
			attempt++
			lastErr = err
			next := max(interval, after)
			if opts.OnRetry != nil {
				opts.OnRetry(retry.Attempt{N: attempt, Err: err, Next: next})
			}
			t.Reset(next)
			continue
		}
		attempt, lastErr = 0, nil
		if state != "" && state != last {
			last = state
			opts.State(state)
		}
		if done {
			return nil
		}
		t.Reset(interval)
	}
}

func timeoutErr(ctx context.Context, what, last string, lastErr error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	msg := fmt.Sprintf("waiting for %s", what)
	if last != "" {
		msg += fmt.Sprintf(" (last state: %s)", last)
	}
	if lastErr != nil {
		return fmt.Errorf("%s: %w (last error: %v)", msg, ErrTimeout, lastErr)
	}
	return fmt.Errorf("%s: %w", msg, ErrTimeout)
}
