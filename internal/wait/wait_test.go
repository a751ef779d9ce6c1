package wait_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// OnCheck is told before every check, retried ones included, so the last
// call marks the start of the check that saw the condition.
func TestUntilReportsEveryCheckBeforeItRuns(t *testing.T) {
	t.Parallel()
	announced, checks := 0, 0
	opts := wait.Options{Interval: time.Millisecond, OnCheck: func() { announced++ }}
	err := wait.Until(context.Background(), "thing", opts, func(context.Context) (bool, string, error) {
		checks++
		if announced != checks {
			t.Errorf("check %d ran after %d announcements", checks, announced)
		}
		switch checks {
		case 1:
			return false, "", retry.Transient(errors.New("503"), 0)
		case 2:
			return false, "not yet", nil
		}
		return true, "done", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checks != 3 || announced != 3 {
		t.Errorf("%d checks, %d announced; want 3 and 3", checks, announced)
	}
}
