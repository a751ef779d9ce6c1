// Package retry is the one retry policy every external call goes through:
// exponential backoff with jitter, bounded by the caller's deadline, honouring
// Retry-After, and never retrying an error known to be permanent.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// classified wraps an error with a verdict on whether retrying can help.
type classified struct {
	err        error
	transient  bool
	retryAfter time.Duration
}

func (c *classified) Error() string { return c.err.Error() }
func (c *classified) Unwrap() error { return c.err }

// Transient marks err as worth retrying, optionally not before retryAfter.
func Transient(err error, retryAfter time.Duration) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, transient: true, retryAfter: retryAfter}
}

// Permanent marks err as never worth retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err}
}

// Classify reports whether err is transient, and the server's requested delay.
// Explicit marks (Transient/Permanent) win; otherwise gRPC codes and network
// errors are judged by kind. Unknown errors are permanent: retrying what we do
// not understand only delays the undo that stops the bill.
func Classify(err error) (transient bool, retryAfter time.Duration) {
	if err == nil {
		return false, 0
	}
	var c *classified
	if errors.As(err, &c) {
		return c.transient, c.retryAfter
	}
	if errors.Is(err, context.Canceled) {
		return false, 0
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return GRPCTransient(s.Code()), 0
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true, 0
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
		return true, 0
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// A per-attempt timeout; the enclosing deadline still bounds the loop.
		return true, 0
	}
	return false, 0
}

// HTTPTransient says whether an HTTP status is worth retrying.
func HTTPTransient(code int) bool {
	return code == 408 || code == 429 || code >= 500
}

// GRPCTransient says whether a gRPC code is worth retrying.
func GRPCTransient(c codes.Code) bool {
	switch c {
	case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}

// Attempt describes one failed try, for progress events.
type Attempt struct {
	N    int           // 1-based number of the failed attempt
	Err  error         // what failed
	Next time.Duration // delay before the next try
}

// Policy bounds a retry loop. The zero value is usable.
type Policy struct {
	Initial     time.Duration // first backoff; default 200ms
	Max         time.Duration // cap on one backoff; default 10s
	MaxAttempts int           // 0: until the context's deadline
	// Budget bounds the whole loop, so that a call does not retry a hung or
	// failing API until some distant deadline (or forever). An earlier
	// deadline on ctx (a wait's) still wins, and a context marked with
	// WithBudget (cleanup's) replaces it. 0 means no bound of its own.
	Budget time.Duration
	// OnRetry, when set, is told about every retry before it waits.
	OnRetry func(Attempt)
}

// Do runs op until it succeeds, fails permanently, runs out of attempts, or
// ctx ends. The returned error is op's last error, not the context's, so the
// user sees what actually went wrong.
func (p Policy) Do(ctx context.Context, op func(context.Context) error) error {
	initial, maxDelay := p.Initial, p.Max
	if initial <= 0 {
		initial = 200 * time.Millisecond
	}
	if maxDelay <= 0 {
		maxDelay = 10 * time.Second
	}
	budget := p.Budget
	if b, ok := ctx.Value(budgetKey{}).(time.Duration); ok {
		budget = b
	}
	if budget > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, budget)
		defer cancel()
	}
	delay := initial
	for n := 1; ; n++ {
		err := op(ctx)
		if err == nil {
			return nil
		}
		transient, after := Classify(err)
		if !transient {
			return err
		}
		if p.MaxAttempts > 0 && n >= p.MaxAttempts {
			return fmt.Errorf("after %d attempts: %w", n, err)
		}
		wait := delay/2 + rand.N(delay/2+1) // jitter in [delay/2, delay]
		if after > wait {
			wait = after
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			// Waiting would outlive the deadline: report the real error now.
			return err
		}
		if p.OnRetry != nil {
			p.OnRetry(Attempt{N: n, Err: err, Next: wait})
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(delay*2, maxDelay)
	}
}

type budgetKey struct{}

// WithBudget gives every retry loop under ctx the budget d instead of its
// policy's: cleanup retries longer than a normal call, because it is what
// keeps the bill at zero.
func WithBudget(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, budgetKey{}, d)
}
