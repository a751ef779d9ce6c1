package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/retry"
)

var errFlaky = errors.New("503 service unavailable")

// hung stands for a call that never gets an answer: it fails transiently
// only when its context ends, as an attempt timeout would.
func hung(ctx context.Context) error {
	<-ctx.Done()
	return retry.Transient(ctx.Err(), 0)
}

func TestBudget(t *testing.T) {
	t.Parallel()
	const budget = time.Second
	// Slack for a loaded machine; still well below the budget, so an
	// earlier deadline winning is told apart from the budget ending.
	const slack = 700 * time.Millisecond
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		op   func(context.Context) error
		min  time.Duration // the loop must last at least this
		max  time.Duration // and end by this
	}{
		{name: "transient errors stop at the budget",
			ctx: func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			op:  func(context.Context) error { return retry.Transient(errFlaky, 0) },
			max: budget + slack},
		{name: "a hung call stops at the budget",
			ctx: func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			op:  hung, min: budget, max: budget + slack},
		{name: "a distant deadline does not lift the budget",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), time.Hour)
			},
			op: hung, min: budget, max: budget + slack},
		{name: "an earlier deadline wins",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 30*time.Millisecond)
			},
			op: hung, max: 30*time.Millisecond + slack},
		{name: "cleanup's budget replaces the policy's",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				return retry.WithBudget(ctx, 2*budget), cancel
			},
			op: hung, min: 2 * budget, max: 2*budget + slack},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := tt.ctx()
			defer cancel()
			p := retry.Policy{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, Budget: budget}
			start := time.Now()
			err := p.Do(ctx, tt.op)
			d := time.Since(start)
			if err == nil {
				t.Fatal("succeeded against a failing call")
			}
			if d < tt.min || d > tt.max {
				t.Errorf("gave up after %s, want between %s and %s", d, tt.min, tt.max)
			}
		})
	}
}

func TestBudgetNeverRetriesPermanentErrors(t *testing.T) {
	t.Parallel()
	calls := 0
	err := retry.Policy{Budget: time.Second}.Do(context.Background(), func(context.Context) error {
		calls++
		return retry.Permanent(errors.New("400 bad request"))
	})
	if err == nil || calls != 1 {
		t.Errorf("err %v after %d calls, want the permanent error after 1", err, calls)
	}
}

func TestRetriesUntilSuccessWithinBudget(t *testing.T) {
	t.Parallel()
	calls := 0
	var seen []retry.Attempt
	p := retry.Policy{Initial: time.Millisecond, Budget: time.Second, OnRetry: func(a retry.Attempt) { seen = append(seen, a) }}
	err := p.Do(context.Background(), func(context.Context) error {
		calls++
		if calls < 3 {
			return retry.Transient(errFlaky, 0)
		}
		return nil
	})
	if err != nil || calls != 3 || len(seen) != 2 || seen[1].N != 2 {
		t.Errorf("err %v, %d calls, retries reported %+v", err, calls, seen)
	}
}
