package provision

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// movingIP answers one address, then another after moved.
type movingIP struct {
	moved atomic.Bool
	calls atomic.Int32
}

func (m *movingIP) Detect(context.Context) (netip.Addr, error) {
	m.calls.Add(1)
	if m.moved.Load() {
		return netip.MustParseAddr("203.0.113.99"), nil
	}
	return netip.MustParseAddr("198.51.100.7"), nil
}

func TestOperatorIPChangeEndsTheWaitAtOnce(t *testing.T) {
	t.Parallel()
	det := &movingIP{}
	p := New(Options{Config: config.New()})
	p.ip, p.operatorIP = det, netip.MustParseAddr("198.51.100.7")

	if err := p.operatorIPChanged(context.Background()); err != nil {
		t.Fatalf("same IP: %v", err)
	}
	det.moved.Store(true)

	// A wait that would run for a minute, seeing the node time out.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	gctx, opts, done := p.guardIP(ctx, wait.Options{Interval: time.Millisecond})
	start := time.Now()
	werr := wait.Until(gctx, "the node", opts, func(context.Context) (bool, string, error) {
		return false, "unreachable (timeout)", nil
	})
	err := done()
	if !errors.Is(err, ErrOperatorIPChanged) || werr == nil {
		t.Fatalf("done() = %v (wait: %v), want ErrOperatorIPChanged", err, werr)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("took %s: the change must end the wait at once", time.Since(start))
	}
	for _, want := range []string{"changed from 198.51.100.7 to 203.0.113.99", "only admit 198.51.100.7"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}

	// A configured operator-ip is what the firewall admits: never re-detected.
	cfg := config.New()
	cfg.Set(config.OperatorIP, "198.51.100.7", config.FromFlag, "")
	q := New(Options{Config: cfg})
	q.ip, q.operatorIP = det, netip.MustParseAddr("198.51.100.7")
	before := det.calls.Load()
	if err := q.operatorIPChanged(context.Background()); err != nil || det.calls.Load() != before {
		t.Fatalf("configured operator-ip: %v, %d detections", err, det.calls.Load()-before)
	}
}
