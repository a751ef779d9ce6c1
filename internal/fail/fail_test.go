package fail_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/fail"
)

func TestExitCode(t *testing.T) {
	t.Parallel()
	base := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, fail.OK},
		{"plain error", base, fail.Failed},
		{"cancelled", context.Canceled, fail.Interrupted},
		{"wrapped cancellation", fmt.Errorf("wait: %w", context.Canceled), fail.Interrupted},
		{"deadline is a failure, not an interrupt", context.DeadlineExceeded, fail.Failed},
		{"usage", fail.UsageError(base), fail.Usage},
		{"wrapped usage", fmt.Errorf("load: %w", fail.UsageError(base)), fail.Usage},
		{"explicit code", fail.WithCode(base, fail.LeftRunning), fail.LeftRunning},
		{"outermost code wins", fail.WithCode(fail.WithCode(base, fail.Incomplete), fail.Usage), fail.Usage},
		{"code beats cancellation", fail.WithCode(context.Canceled, fail.Incomplete), fail.Incomplete},
		{"joined", errors.Join(base, fail.WithCode(base, fail.Incomplete)), fail.Incomplete},
	}
	for _, tt := range tests {
		if got := fail.ExitCode(tt.err); got != tt.want {
			t.Errorf("%s: ExitCode = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestWithCodeKeepsTheError(t *testing.T) {
	t.Parallel()
	base := errors.New("boom")
	err := fail.WithCode(base, fail.Incomplete)
	if err.Error() != "boom" || !errors.Is(err, base) {
		t.Errorf("WithCode changed the error: %v", err)
	}
	if fail.WithCode(nil, fail.Usage) != nil {
		t.Error("WithCode(nil) is not nil")
	}
	if !fail.IsUsage(fail.UsageError(base)) || fail.IsUsage(base) {
		t.Error("IsUsage is wrong")
	}
}

func TestCodesAreDocumented(t *testing.T) {
	t.Parallel()
	want := []int{0, 1, 2, 3, 4, 130}
	if len(fail.Codes) != len(want) {
		t.Fatalf("Codes = %v", fail.Codes)
	}
	for i, c := range fail.Codes {
		if c.Code != want[i] || c.Text == "" {
			t.Errorf("Codes[%d] = %+v, want code %d with text", i, c, want[i])
		}
	}
}
