package provision

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

// partialStore writes secrets one by one and fails after the first, as a
// connection lost half way through a Write would leave them.
type partialStore struct {
	mu   sync.Mutex
	held map[string]string
}

func (s *partialStore) List(context.Context) (map[string]string, error) { return nil, nil }
func (s *partialStore) Get(context.Context, string, string) (string, error) {
	return "", errors.New("not used")
}

func (s *partialStore) CheckWrite(context.Context, string, string) (bool, error) { return false, nil }

func (s *partialStore) Write(_ context.Context, path string, secrets map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(secrets))
	for n := range secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	s.held[path+"/"+names[0]] = secrets[names[0]]
	return errors.New("connection reset by peer")
}

func (s *partialStore) Delete(_ context.Context, path string, names []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		delete(s.held, path+"/"+n) // a missing one is no error
	}
	return nil
}

func (s *partialStore) Close() {}

// TestKeepUndoesAPartialWrite: a failed write may have stored part of the
// set; the run's cleanup must remove that part too.
func TestKeepUndoesAPartialWrite(t *testing.T) {
	t.Parallel()
	cfg := config.New()
	cfg.Set(config.ClusterName, "partial", config.FromFlag, "")
	store := &partialStore{held: map[string]string{}}
	p := New(Options{Config: cfg})
	p.store = store
	rn := pipeline.Runner{Phases: []pipeline.Phase{pipeline.PhaseFunc("store", func(ctx context.Context, r *pipeline.Run) error {
		return p.keep(ctx, r, map[string][]byte{SecretTalosBundle: []byte("bundle"), SecretTalosconfig: []byte("talosconfig")})
	})}}
	_, err := rn.Execute(context.Background())
	if err == nil {
		t.Fatal("the failed write did not fail the run")
	}
	var f *pipeline.Failure
	if !errors.As(err, &f) || len(f.Leftovers) != 0 {
		t.Fatalf("err = %v, want a failure with a clean undo", err)
	}
	if len(store.held) != 0 {
		t.Fatalf("after cleanup the store still holds %v: the partial write was not undone", store.held)
	}
}
