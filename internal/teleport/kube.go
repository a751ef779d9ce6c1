package teleport

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gravitational/teleport/api/client/proto"
	"github.com/gravitational/teleport/api/defaults"
	"github.com/gravitational/teleport/api/types"
	"github.com/gravitational/trace"

	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// States WaitKubeServer reports through wait.Options.OnState.
const (
	StateNoKubeServer = "no kube server yet"
	StateRegistered   = "registered"
)

// WaitKubeServer waits until a kube server for clusterName is registered.
// It watches kube servers (no polling) and lists once after the watch is
// established, so a registration just before the call is not missed. A
// broken watch is re-established after opts.Interval, reported through
// opts.OnRetry; against a server that cannot watch it polls instead.
func (c *Client) WaitKubeServer(ctx context.Context, clusterName string, opts wait.Options) error {
	k := &kubeWait{c: c, cluster: clusterName, opts: opts}
	what := fmt.Sprintf("the Teleport kube agent of cluster %s", clusterName)
	interval := opts.Interval
	if interval <= 0 {
		interval = time.Second
	}
	attempt := 0
	for {
		done, err := k.watchOnce(ctx)
		if done {
			return nil
		}
		if ctx.Err() != nil {
			return k.timeout(ctx, what, err)
		}
		if trace.IsNotImplemented(err) {
			return k.poll(ctx, what)
		}
		err = classify(err)
		transient, after := retry.Classify(err)
		if !transient {
			return fmt.Errorf("wait for %s: %w", what, err)
		}
		k.lastErr = err
		next := max(interval, after)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < next {
			// Waiting would outlive the deadline (the stream may even have
			// seen it a moment before ctx did): it is a timeout, not a retry.
			return k.timeout(ctx, what, err)
		}
		attempt++
		if opts.OnRetry != nil {
			opts.OnRetry(retry.Attempt{N: attempt, Err: err, Next: next})
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return k.timeout(ctx, what, err)
		case <-t.C:
		}
	}
}

type kubeWait struct {
	c       *Client
	cluster string
	opts    wait.Options
	last    string
	lastErr error
}

// state reports s once per change, across watch restarts.
func (k *kubeWait) state(s string) {
	if s != k.last {
		k.last = s
		k.opts.State(s)
	}
}

// watchOnce runs one watch to its end: true once the server is seen.
func (k *kubeWait) watchOnce(ctx context.Context) (bool, error) {
	w, err := k.c.api.NewWatcher(ctx, types.Watch{Kinds: []types.WatchKind{{Kind: types.KindKubeServer}}})
	if err != nil {
		return false, err
	}
	defer w.Close()
	// Only after OpInit is every later registration guaranteed to be
	// delivered; listing before it could miss one in between.
	select {
	case ev := <-w.Events():
		if ev.Type != types.OpInit {
			return false, trace.BadParameter("watch of kube servers started with %v, want init", ev.Type)
		}
	case <-w.Done():
		return false, w.Error()
	}
	found, err := k.c.kubeServerListed(ctx, k.cluster)
	if err != nil {
		return false, err
	}
	if found {
		k.state(StateRegistered)
		return true, nil
	}
	k.state(StateNoKubeServer)
	for {
		select {
		case ev := <-w.Events():
			if ev.Type == types.OpPut && isKubeServerOf(ev.Resource, k.cluster) {
				k.state(StateRegistered)
				return true, nil
			}
		case <-w.Done():
			return false, w.Error()
		}
	}
}

// poll is the fallback for auth services that do not support watches.
func (k *kubeWait) poll(ctx context.Context, what string) error {
	opts := k.opts
	opts.OnState = k.state
	return wait.Until(ctx, what, opts, func(ctx context.Context) (bool, string, error) {
		found, err := k.c.kubeServerListed(ctx, k.cluster)
		if err != nil {
			return false, "", classify(err)
		}
		if found {
			return true, StateRegistered, nil
		}
		return false, StateNoKubeServer, nil
	})
}

func (k *kubeWait) timeout(ctx context.Context, what string, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	msg := "waiting for " + what
	if k.last != "" {
		msg += fmt.Sprintf(" (last state: %s)", k.last)
	}
	if k.lastErr != nil {
		return fmt.Errorf("%s: %w (last error: %v)", msg, wait.ErrTimeout, k.lastErr)
	}
	return fmt.Errorf("%s: %w", msg, wait.ErrTimeout)
}

// kubeServerListed pages through kube servers looking for clusterName's.
// It calls ListResources page by page itself: the SDK's GetAllResources
// takes LimitExceeded (also the rate-limit answer) for "page too big" and
// silently retries with smaller pages.
func (c *Client) kubeServerListed(ctx context.Context, clusterName string) (bool, error) {
	req := proto.ListResourcesRequest{
		ResourceType: types.KindKubeServer,
		Namespace:    defaults.Namespace,
		Limit:        int32(defaults.DefaultChunkSize),
	}
	for {
		resp, err := c.api.ListResources(ctx, req)
		if err != nil {
			return false, err
		}
		for _, r := range resp.Resources {
			if isKubeServerOf(r, clusterName) {
				return true, nil
			}
		}
		if resp.NextKey == "" || len(resp.Resources) == 0 {
			return false, nil
		}
		req.StartKey = resp.NextKey
	}
}

func isKubeServerOf(r types.Resource, clusterName string) bool {
	ks, ok := r.(types.KubeServer)
	return ok && ks.GetCluster() != nil && ks.GetCluster().GetName() == clusterName
}

// KubeClusters lists the names of the kube clusters with a registered kube
// server (an agent heartbeating), each once.
func (c *Client) KubeClusters(ctx context.Context) ([]string, error) {
	var names []string
	err := c.retry.Do(ctx, func(ctx context.Context) error {
		return c.attempt(ctx, func(ctx context.Context) error {
			names = nil
			seen := map[string]bool{}
			req := proto.ListResourcesRequest{ResourceType: types.KindKubeServer, Namespace: defaults.Namespace, Limit: int32(defaults.DefaultChunkSize)}
			for {
				resp, err := c.api.ListResources(ctx, req)
				if err != nil {
					return classify(err)
				}
				for _, r := range resp.Resources {
					if ks, ok := r.(types.KubeServer); ok && ks.GetCluster() != nil && !seen[ks.GetCluster().GetName()] {
						seen[ks.GetCluster().GetName()] = true
						names = append(names, ks.GetCluster().GetName())
					}
				}
				if resp.NextKey == "" || len(resp.Resources) == 0 {
					return nil
				}
				req.StartKey = resp.NextKey
			}
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list Teleport kube servers: %w", err)
	}
	return names, nil
}
