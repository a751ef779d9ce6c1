// Package testwait lets a test wait for a condition with a deadline
// instead of sleeping a guessed time: the test goes on as soon as the
// condition holds, and fails saying what it waited for when it never does.
package testwait

import (
	"testing"
	"time"
)

// The condition is polled every firstInterval at first, so a wait that is
// over at once costs about nothing, then less and less often up to
// maxInterval, so a long wait on a loaded machine does not spin.
const (
	firstInterval = time.Millisecond
	maxInterval   = 10 * time.Millisecond
)

// For polls cond until it holds. When within passes first, it fails the
// test (t.Fatalf, so call it from the test's goroutine) with "timed out
// after <within> waiting for <what>".
func For(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	interval := firstInterval
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for !cond() {
		if !time.Now().Before(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
			return
		}
		<-timer.C
		interval = min(2*interval, maxInterval)
		timer.Reset(interval)
	}
}
