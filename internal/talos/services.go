package talos

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/client"

	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// ErrServiceFailed is returned (wrapped) when an awaited service reports Failed.
var ErrServiceFailed = errors.New("service failed")

// serviceView is what the client knows of one service.
type serviceView struct {
	state   string
	healthy bool
	known   bool // health known
	msg     string
}

func (v serviceView) String() string {
	switch {
	case v.state == "":
		return "not started"
	case v.state == "Running" && v.known && v.healthy:
		return "Running/healthy"
	case v.state == "Running" && v.known:
		return "Running/unhealthy"
	default:
		return v.state
	}
}

func (v serviceView) ready() bool { return v.state == "Running" && v.known && v.healthy }

// serviceTracker folds snapshots and events into one view of the awaited services.
type serviceTracker struct {
	want  []string
	views map[string]serviceView
}

func newServiceTracker(want []string) *serviceTracker {
	return &serviceTracker{want: want, views: map[string]serviceView{}}
}

func (t *serviceTracker) set(id, state string, h *machine.ServiceHealth, msg string) {
	v := serviceView{state: state, msg: msg}
	if h != nil {
		v.known, v.healthy = !h.GetUnknown(), h.GetHealthy()
		if h.GetLastMessage() != "" {
			v.msg = h.GetLastMessage()
		}
	}
	t.views[id] = v
}

func (t *serviceTracker) snapshot(list []*machine.ServiceInfo) {
	for _, s := range list {
		t.set(s.GetId(), s.GetState(), s.GetHealth(), "")
	}
}

func (t *serviceTracker) event(ev *machine.ServiceStateEvent) {
	state := strings.ToLower(ev.GetAction().String())
	if state != "" {
		state = strings.ToUpper(state[:1]) + state[1:]
	}
	t.set(ev.GetService(), state, ev.GetHealth(), ev.GetMessage())
}

// status reports whether every awaited service is ready, the progress line,
// and a permanent error if one of them failed.
func (t *serviceTracker) status() (bool, string, error) {
	parts := make([]string, 0, len(t.want))
	done := true
	for _, id := range t.want {
		v := t.views[id]
		parts = append(parts, id+": "+v.String())
		if v.state == "Failed" {
			return false, "", retry.Permanent(fmt.Errorf("%w: %s: %s", ErrServiceFailed, id, v.msg))
		}
		done = done && v.ready()
	}
	return done, strings.Join(parts, ", "), nil
}

// WaitServices waits until every service in services (default
// DefaultServices()) is Running and healthy, reporting each change as one line
// ("etcd: Running/healthy, kubelet: Preparing, ..."). It follows the node's
// event stream after a ServiceList snapshot and falls back to polling
// ServiceList every opts.Interval if the stream fails. A Failed service ends
// the wait with ErrServiceFailed.
func (c *Client) WaitServices(ctx context.Context, ip string, talosconfig []byte, services []string, opts wait.Options) error {
	m, err := parseTalosconfig(talosconfig, ip)
	if err != nil {
		return err
	}
	if len(services) == 0 {
		services = DefaultServices()
	}
	what := fmt.Sprintf("services %s on %s", strings.Join(services, ", "), ip)
	tr := newServiceTracker(services)
	last := ""
	report := func() (bool, error) {
		done, state, err := tr.status()
		if err != nil {
			return false, err
		}
		if state != last {
			last = state
			opts.State(state)
		}
		return done, nil
	}

	// The stream is one long check: every change arrives as it happens.
	opts.Checking()
	streamErr := c.watchServices(ctx, ip, m, tr, report)
	if streamErr == nil {
		return nil
	}
	// gRPC enforces the deadline with its own timer, so the stream can die
	// of it a moment before ctx reports it.
	if dl, ok := ctx.Deadline(); ctx.Err() != nil || (ok && !time.Now().Before(dl)) {
		return timeoutErr(ctx, what, last, streamErr)
	}
	if transient, _ := retry.Classify(streamErr); !transient && errors.Is(streamErr, ErrServiceFailed) {
		return streamErr
	}
	if opts.OnRetry != nil {
		opts.OnRetry(retry.Attempt{N: 1, Err: fmt.Errorf("event stream failed, polling instead: %w", streamErr)})
	}
	// Polling reports states itself; seed it with the last line so an
	// unchanged state is not announced twice.
	pollOpts := opts
	pollOpts.OnState = func(s string) {
		if s != last {
			last = s
			opts.State(s)
		}
	}
	return wait.Until(ctx, what, pollOpts, func(ctx context.Context) (bool, string, error) {
		actx, cancel := c.attempt(ctx)
		defer cancel()
		cl, err := c.secureClient(actx, ip, m)
		if err != nil {
			return false, "", err
		}
		defer cl.Close()
		resp, err := cl.ServiceList(actx)
		if err != nil {
			return false, "", grpcErr(fmt.Sprintf("list services on %s", ip), err)
		}
		for _, msg := range resp.GetMessages() {
			tr.snapshot(msg.GetServices())
		}
		return tr.status()
	})
}

// watchServices follows the event stream until the services are ready. Any
// error means "fall back to polling" unless it is a failed service.
func (c *Client) watchServices(ctx context.Context, ip string, m *mtls, tr *serviceTracker, report func() (bool, error)) error {
	cl, err := c.secureClient(ctx, ip, m)
	if err != nil {
		return err
	}
	defer cl.Close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()

	ch := make(chan client.EventResult, 16)
	// Subscribe first, then snapshot: a change between the two is then
	// seen as an event rather than lost. The stream lives on wctx; only the
	// wait for its opening event is bounded by AttemptTimeout.
	guard := time.AfterFunc(c.opts.AttemptTimeout, cancel)
	err = cl.EventsWatchV2(wctx, ch)
	if !guard.Stop() {
		return retry.Transient(fmt.Errorf("watch events on %s: no answer within %s", ip, c.opts.AttemptTimeout), 0)
	}
	if err != nil {
		return fmt.Errorf("watch events on %s: %w", ip, err)
	}
	sctx, scancel := c.attempt(wctx)
	resp, err := cl.ServiceList(sctx)
	scancel()
	if err != nil {
		return grpcErr(fmt.Sprintf("list services on %s", ip), err)
	}
	for _, msg := range resp.GetMessages() {
		tr.snapshot(msg.GetServices())
	}
	if done, err := report(); done || err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case res := <-ch:
			if res.Error != nil {
				return fmt.Errorf("watch events on %s: %w", ip, res.Error)
			}
			ev, ok := res.Event.Payload.(*machine.ServiceStateEvent)
			if !ok {
				continue
			}
			tr.event(ev)
			if done, err := report(); done || err != nil {
				return err
			}
		}
	}
}

func timeoutErr(ctx context.Context, what, last string, lastErr error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	msg := "waiting for " + what
	if last != "" {
		msg += fmt.Sprintf(" (last state: %s)", last)
	}
	return fmt.Errorf("%s: %w (last error: %v)", msg, wait.ErrTimeout, lastErr)
}
