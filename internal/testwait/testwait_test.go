package testwait_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/testwait"
)

// recorder is a testing.TB that keeps what Fatalf said instead of ending
// the goroutine.
type recorder struct {
	testing.TB
	fatal string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }

func TestForReturnsOnceTheConditionHolds(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	r := &recorder{TB: t}
	testwait.For(r, time.Minute, "the third poll", func() bool { return calls.Add(1) == 3 })
	if r.fatal != "" || calls.Load() != 3 {
		t.Errorf("fatal %q after %d polls, want none after 3", r.fatal, calls.Load())
	}
}

func TestForFailsNamingWhatItWaitedFor(t *testing.T) {
	t.Parallel()
	r := &recorder{TB: t}
	start := time.Now()
	testwait.For(r, 30*time.Millisecond, "the moon to turn blue", func() bool { return false })
	if want := "timed out after 30ms waiting for the moon to turn blue"; r.fatal != want {
		t.Errorf("fatal %q, want %q", r.fatal, want)
	}
	if time.Since(start) < 30*time.Millisecond {
		t.Errorf("gave up after %s, before its deadline", time.Since(start))
	}
}
