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
	return c.WaitKubeAgent(ctx, clusterName, nil, opts)
}

// LabelRun is the static label a run gives its kube agent: its value is
// unique to the run, so a kube server carrying it provably comes from the
// agent this run installed, not from an earlier cluster of the same name
// whose registration has not expired, nor from another agent using it.
const LabelRun = "rawkode-cloud/run"

// StateOthersOnly is reported while kube servers with the cluster's name
// are listed, none of them carrying the labels waited for.
const StateOthersOnly = "only other agents registered under this name"

// WaitKubeAgent is WaitKubeServer for the one agent whose kube cluster
// carries every label in labels (its static labels): kube servers of the
// same name without them are reported, never accepted.
func (c *Client) WaitKubeAgent(ctx context.Context, clusterName string, labels map[string]string, opts wait.Options) error {
	k := &kubeWait{c: c, cluster: clusterName, labels: labels, opts: opts}
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
	labels  map[string]string
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
	// The watch is one long check: a registration arrives as it happens.
	k.opts.Checking()
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
	found, others, err := k.c.kubeServerListed(ctx, k.cluster, k.labels)
	if err != nil {
		return false, err
	}
	if found {
		k.state(StateRegistered)
		return true, nil
	}
	k.state(notYet(others))
	for {
		select {
		case ev := <-w.Events():
			if ev.Type == types.OpPut && isKubeServerOf(ev.Resource, k.cluster, k.labels) {
				k.state(StateRegistered)
				return true, nil
			}
			if ev.Type == types.OpPut && isKubeServerOf(ev.Resource, k.cluster, nil) {
				k.state(StateOthersOnly)
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
		found, others, err := k.c.kubeServerListed(ctx, k.cluster, k.labels)
		if err != nil {
			return false, "", classify(err)
		}
		if found {
			return true, StateRegistered, nil
		}
		return false, notYet(others), nil
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

func notYet(others int) string {
	if others > 0 {
		return StateOthersOnly
	}
	return StateNoKubeServer
}

// kubeServerListed pages through kube servers looking for clusterName's
// with labels; others counts those with the name but not the labels.
// It calls ListResources page by page itself: the SDK's GetAllResources
// takes LimitExceeded (also the rate-limit answer) for "page too big" and
// silently retries with smaller pages.
func (c *Client) kubeServerListed(ctx context.Context, clusterName string, labels map[string]string) (found bool, others int, err error) {
	err = c.eachKubeServer(ctx, func(ks types.KubeServer) bool {
		switch {
		case isKubeServerOf(ks, clusterName, labels):
			found = true
			return false
		case isKubeServerOf(ks, clusterName, nil):
			others++
		}
		return true
	})
	return found, others, err
}

// eachKubeServer calls fn with every listed kube server until it says stop.
func (c *Client) eachKubeServer(ctx context.Context, fn func(types.KubeServer) bool) error {
	req := proto.ListResourcesRequest{
		ResourceType: types.KindKubeServer,
		Namespace:    defaults.Namespace,
		Limit:        int32(defaults.DefaultChunkSize),
	}
	for {
		resp, err := c.api.ListResources(ctx, req)
		if err != nil {
			return err
		}
		for _, r := range resp.Resources {
			if ks, ok := r.(types.KubeServer); ok && !fn(ks) {
				return nil
			}
		}
		if resp.NextKey == "" || len(resp.Resources) == 0 {
			return nil
		}
		req.StartKey = resp.NextKey
	}
}

// isKubeServerOf reports whether r is a kube server of clusterName whose
// cluster carries every label in labels (static labels, set by the agent).
func isKubeServerOf(r types.Resource, clusterName string, labels map[string]string) bool {
	ks, ok := r.(types.KubeServer)
	if !ok || ks.GetCluster() == nil || ks.GetCluster().GetName() != clusterName {
		return false
	}
	have := ks.GetCluster().GetStaticLabels()
	for k, v := range labels {
		if have[k] != v {
			return false
		}
	}
	return true
}

// KubeAgent is one kube server registered under a cluster name.
type KubeAgent struct {
	Host    string // the agent's host ID
	Labels  map[string]string
	Expires time.Time // zero when Teleport did not say
}

// KubeAgents lists the kube servers registered under clusterName: before a
// run, any of them is an agent this run did not install.
func (c *Client) KubeAgents(ctx context.Context, clusterName string) ([]KubeAgent, error) {
	var out []KubeAgent
	err := c.retry.Do(ctx, func(ctx context.Context) error {
		return c.attempt(ctx, func(ctx context.Context) error {
			out = nil
			return classify(c.eachKubeServer(ctx, func(ks types.KubeServer) bool {
				if isKubeServerOf(ks, clusterName, nil) {
					out = append(out, KubeAgent{Host: ks.GetHostID(), Labels: ks.GetCluster().GetStaticLabels(), Expires: ks.Expiry()})
				}
				return true
			}))
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list Teleport kube servers of %s: %w", clusterName, err)
	}
	return out, nil
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
