// Package emulator holds what every emulated external system shares: fault
// injection, per-transition latency and request counters. The emulators are
// part of the product (they power `provision --sandbox`), so these types are
// safe for concurrent use and never reach a real network.
package emulator

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind is the class of fault an emulated operation shows.
type Kind string

const (
	// Error is a permanent failure: retrying never helps.
	Error Kind = "error"
	// Unavailable is a transient failure (5xx, connection reset, gRPC Unavailable).
	Unavailable Kind = "unavailable"
	// RateLimit answers 429 with Retry-After (gRPC ResourceExhausted).
	RateLimit Kind = "ratelimit"
	// Hang never answers; the caller's deadline is what ends the call.
	Hang Kind = "hang"
	// Never means the awaited condition never comes (e.g. the install never completes).
	Never Kind = "never"
)

// Kinds lists the general fault kinds, which every fault point accepts, in
// a stable order for help texts.
var Kinds = []Kind{Error, Unavailable, RateLimit, Hang, Never}

// Special kinds reproduce one behaviour of one real system; only the fault
// points that name them accept them (see the sandbox's fault catalogue).
const (
	// Linger keeps an old state answering longer than usual (Talos's
	// maintenance API outliving the apply).
	Linger Kind = "linger"
	// Stale leaves a registration of an earlier run behind (a kube server
	// whose heartbeat has not expired yet).
	Stale Kind = "stale"
	// Deny takes a permission away from the configured credentials.
	Deny Kind = "deny"
	// Expire makes a credential expire before it is used.
	Expire Kind = "expire"
	// Hijack is somebody else acting first: a stranger configures a node
	// that waits, unauthenticated, in maintenance mode.
	Hijack Kind = "hijack"
	// Lost carries the request out but never answers it: the connection
	// stays silent until the caller gives up, as when an answer is lost on
	// the way back. A caller cannot tell it from a request that never
	// arrived, except by looking.
	Lost Kind = "lost"
)

// SpecialKinds lists the special kinds in a stable order.
var SpecialKinds = []Kind{Linger, Stale, Deny, Expire, Hijack, Lost}

// Fault is one injected misbehaviour. Times bounds how often it fires:
// 0 means every time, N means only the first N matching calls.
type Fault struct {
	Kind  Kind
	Times int
	// Node, when set, limits the fault to that node of the cluster (its
	// name, e.g. sandbox-cp-2); the other nodes behave normally.
	Node string
}

func (f Fault) String() string {
	s := string(f.Kind)
	if f.Times > 0 {
		s += fmt.Sprintf("@%d", f.Times)
	}
	if f.Node != "" {
		s += "@node=" + f.Node
	}
	return s
}

// ParseFault parses "POINT=KIND", "POINT=KIND@N", and either followed by
// "@node=NAME" to hit only that node.
func ParseFault(spec string) (string, Fault, error) {
	point, rest, ok := strings.Cut(spec, "=")
	point = strings.TrimSpace(point)
	if !ok || point == "" || rest == "" {
		return "", Fault{}, fmt.Errorf("fault %q: want POINT=KIND, POINT=KIND@N or either with @node=NAME", spec)
	}
	var node string
	if i := strings.Index(rest, "@node="); i >= 0 {
		rest, node = rest[:i], strings.TrimSpace(rest[i+len("@node="):])
		if node == "" {
			return "", Fault{}, fmt.Errorf("fault %q: @node= needs a node name", spec)
		}
	}
	kindStr, timesStr, hasTimes := strings.Cut(rest, "@")
	f := Fault{Kind: Kind(strings.TrimSpace(kindStr))}
	known := false
	for _, k := range append(append([]Kind(nil), Kinds...), SpecialKinds...) {
		if f.Kind == k {
			known = true
		}
	}
	if !known {
		return "", Fault{}, fmt.Errorf("fault %q: unknown kind %q (want one of %s)", spec, f.Kind, joinKinds())
	}
	if hasTimes {
		n, err := strconv.Atoi(timesStr)
		if err != nil || n < 1 {
			return "", Fault{}, fmt.Errorf("fault %q: @N must be a positive integer", spec)
		}
		f.Times = n
	}
	f.Node = node
	return point, f, nil
}

func joinKinds() string {
	all := append(append([]Kind(nil), Kinds...), SpecialKinds...)
	s := make([]string, len(all))
	for i, k := range all {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// Faults is a set of injected faults keyed by fault point
// (e.g. "scaleway.create-server"), plus per-point latency. A fault may be
// limited to one node; ForNode gives that node's view of the set.
type Faults struct {
	*faultState
	node string // the view's node ("": faults for any node only)
}

type faultState struct {
	mu      sync.Mutex
	faults  map[string]*Fault
	fired   map[string]int
	latency map[string]time.Duration
}

// NewFaults returns an empty fault set.
func NewFaults() *Faults {
	return &Faults{faultState: &faultState{faults: map[string]*Fault{}, fired: map[string]int{}, latency: map[string]time.Duration{}}}
}

// ForNode is the fault set as the node called name sees it: the faults for
// every node plus those limited to it (which win). It shares the set.
func (f *Faults) ForNode(name string) *Faults {
	if f == nil {
		return nil
	}
	return &Faults{faultState: f.faultState, node: name}
}

// key is where a fault for point, limited to node or not, is kept.
func key(point, node string) string {
	if node == "" {
		return point
	}
	return point + "@node=" + node
}

// lookup finds the fault this view sees at point; f.mu is held.
func (f *Faults) lookup(point string) (string, *Fault, bool) {
	if f.node != "" {
		if ft, ok := f.faults[key(point, f.node)]; ok {
			return key(point, f.node), ft, true
		}
	}
	ft, ok := f.faults[point]
	return point, ft, ok
}

// Set installs (or replaces) the fault for a point.
func (f *Faults) Set(point string, fault Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cp := fault
	f.faults[key(point, fault.Node)] = &cp
}

// Clear removes every fault (latencies stay).
func (f *Faults) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = map[string]*Fault{}
}

// SetLatency makes every call to point take at least d.
func (f *Faults) SetLatency(point string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latency[point] = d
}

// Check reports the fault to show for one call to point, consuming one of
// its "first N" budget. ok is false when the call should behave normally.
func (f *Faults) Check(point string) (Kind, bool) {
	if f == nil {
		return "", false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ft, ok := f.lookup(point)
	if !ok {
		return "", false
	}
	if ft.Times > 0 && f.fired[k] >= ft.Times {
		return "", false
	}
	f.fired[k]++
	return ft.Kind, true
}

// Peek reports whether point currently has an active fault of kind k,
// without consuming it. Used for "never" conditions checked on every poll.
func (f *Faults) Peek(point string, k Kind) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key, ft, ok := f.lookup(point)
	if !ok || ft.Kind != k {
		return false
	}
	return ft.Times == 0 || f.fired[key] < ft.Times
}

// Get returns the fault this view sees at point, if any.
func (f *Faults) Get(point string) (Fault, bool) {
	if f == nil {
		return Fault{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ft, ok := f.lookup(point)
	if !ok {
		return Fault{}, false
	}
	return *ft, true
}

// Fired reports how many times the fault at point has fired.
func (f *Faults) Fired(point string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fired[point]
}

// Delay waits out the latency configured for point, or until ctx ends.
func (f *Faults) Delay(ctx context.Context, point string) error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	d := f.latency[point]
	f.mu.Unlock()
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Counters counts requests per operation; safe for concurrent use.
type Counters struct {
	mu sync.Mutex
	n  map[string]int
}

// NewCounters returns empty counters.
func NewCounters() *Counters { return &Counters{n: map[string]int{}} }

// Inc counts one request to op.
func (c *Counters) Inc(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[op]++
}

// Get returns the count for op.
func (c *Counters) Get(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[op]
}

// Snapshot returns a copy of all counts.
func (c *Counters) Snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// Total returns the sum of all counts.
func (c *Counters) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := 0
	for _, v := range c.n {
		t += v
	}
	return t
}

// Ops returns the counted operation names, sorted.
func (c *Counters) Ops() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ops := make([]string, 0, len(c.n))
	for k := range c.n {
		ops = append(ops, k)
	}
	sort.Strings(ops)
	return ops
}
