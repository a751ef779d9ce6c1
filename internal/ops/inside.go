package ops

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/kube"
)

// The inside route: on a locked-down cluster the Talos API answers only
// from inside, so the day-two commands reach each node's apid through
// Teleport's Kubernetes access and a short-lived hostNetwork pod on the
// node (internal/inside), keeping the lockdown. Ports are still probed
// from here, directly: that the API stays closed to the internet is part
// of what status and access check.

// Route reaches nodes' Talos API from inside the cluster.
type Route interface {
	AddNode(ip, name string)
	Dial(ctx context.Context, addr string) (net.Conn, error)
	Close(ctx context.Context) error
	Describe() string
	// Kube reads the cluster's Kubernetes API through Teleport.
	Kube(ctx context.Context) (*kube.Client, error)
}

// How the Talos API of a cluster was reached.
const (
	ViaDirect = "direct"
	ViaInside = "inside"
)

// routeCloseBudget bounds deleting the route's pods after the command,
// even when the command was interrupted.
const routeCloseBudget = time.Minute

// reach makes e.Talos reach every node's Talos API: directly when each
// answers this machine, through the inside route otherwise. done undoes
// it (stops the forwards, deletes the pods) and must be called. The error
// wraps ErrLockedDown when no route works.
func (e *Env) reach(ctx context.Context, cluster string, nodes []node) (via string, done func() error, err error) {
	noop := func() error { return nil }
	rerr := e.reachable(ctx, nodes)
	if rerr == nil {
		return ViaDirect, noop, nil
	}
	if !errors.Is(rerr, ErrLockedDown) {
		return "", noop, rerr
	}
	if e.Inside == nil || e.TalosVia == nil {
		return "", noop, fmt.Errorf("%w; the inside route needs Teleport (set teleport-proxy and a Teleport identity)", rerr)
	}
	r, err := e.Inside(ctx, cluster)
	if err != nil {
		return "", noop, fmt.Errorf("%w; the inside route through Teleport Kubernetes access failed: %w", rerr, err)
	}
	for _, n := range nodes {
		r.AddNode(n.IPv4, n.Name) // the node's hostname, which its kubelet registers
	}
	direct := e.Talos
	e.Talos = splitTalos{Talos: e.TalosVia(r.Dial), direct: direct}
	e.route = r
	return ViaInside, func() error {
		e.Talos, e.route = direct, nil
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), routeCloseBudget)
		defer cancel()
		if err := r.Close(cctx); err != nil {
			return fmt.Errorf("clean up the inside route: %w", err)
		}
		return nil
	}, nil
}

// splitTalos sends the Talos API calls through the inside route and
// probes ports directly.
type splitTalos struct {
	Talos
	direct Talos
}

func (s splitTalos) ProbePorts(ctx context.Context, ip string, ports []int) (map[int]bool, error) {
	return s.direct.ProbePorts(ctx, ip, ports)
}

// RouteDescription says how the last reach went, for messages.
func (e *Env) RouteDescription() string {
	if e.route != nil {
		return e.route.Describe()
	}
	return "directly (the Talos API answers this machine)"
}
