package provision

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

// lostAddAPI adds an IP set entry, then loses the answer: what a Proxmox
// API call cut off by Ctrl-C or a dropped connection does.
type lostAddAPI struct {
	ProxmoxAPI // only the IP set calls are used
	mu         sync.Mutex
	set        map[netip.Prefix]bool
}

func (a *lostAddAPI) EnsureIPSet(context.Context, string, string) error { return nil }

func (a *lostAddAPI) AddToIPSet(_ context.Context, _ string, p netip.Prefix, _ string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.set[p] = true
	return errors.New("read tcp: connection reset by peer")
}

func (a *lostAddAPI) RemoveFromIPSet(_ context.Context, _ string, p netip.Prefix) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.set, p)
	return nil
}

// TestLostIPSetAddIsUndone: the operator's /32 opens the host's forwards;
// an add whose answer never came may have opened them, and the run's
// cleanup must close them anyway.
func TestLostIPSetAddIsUndone(t *testing.T) {
	t.Parallel()
	api := &lostAddAPI{set: map[netip.Prefix]bool{}}
	h := &proxmoxHost{api: api}
	rn := pipeline.Runner{Phases: []pipeline.Phase{pipeline.PhaseFunc("open", func(ctx context.Context, r *pipeline.Run) error {
		return h.operatorIPSet(ctx, r, netip.MustParseAddr("198.51.100.7"))
	})}}
	_, err := rn.Execute(context.Background())
	var f *pipeline.Failure
	if !errors.As(err, &f) || len(f.Leftovers) != 0 {
		t.Fatalf("err = %v, want a failure with a clean undo", err)
	}
	if len(api.set) != 0 {
		t.Fatalf("the operator's address stayed in the IP set after cleanup: %v", api.set)
	}
}
