// Package metering counts the requests rawkode-cloud sends, per service and
// operation, for the performance report of real runs (the sandbox reads its
// emulators' own counters instead). Counting happens at the wire: an HTTP
// transport and gRPC interceptors, so retries and polls are all counted.
package metering

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"google.golang.org/grpc"
)

// Meter counts requests; the zero value is not usable, use New. A nil
// *Meter counts nothing, so callers need not check.
type Meter struct {
	mu     sync.Mutex
	counts map[string]map[string]int
}

// New returns an empty meter.
func New() *Meter { return &Meter{counts: map[string]map[string]int{}} }

// Inc counts one request of service's operation op.
func (m *Meter) Inc(service, op string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.counts[service] == nil {
		m.counts[service] = map[string]int{}
	}
	m.counts[service][op]++
}

// Snapshot returns a copy of the counts.
func (m *Meter) Snapshot() map[string]map[string]int {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]map[string]int, len(m.counts))
	for svc, ops := range m.counts {
		out[svc] = make(map[string]int, len(ops))
		for op, n := range ops {
			out[svc][op] = n
		}
	}
	return out
}

// idSegment matches path segments that are identifiers, not operations:
// UUIDs, long hex strings, numbers.
var idSegment = regexp.MustCompile(`^([0-9a-fA-F-]{16,}|[0-9]+)$`)

// Operation names an HTTP request without its identifiers, e.g.
// "GET /baremetal/v1/zones/{id}/servers/{id}" → "GET servers/{id}".
func Operation(r *http.Request) string {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	for i, s := range segs {
		if idSegment.MatchString(s) {
			segs[i] = "{id}"
		}
	}
	// The last two segments say what is asked; the prefix is the API root.
	if len(segs) > 2 {
		segs = segs[len(segs)-2:]
	}
	return r.Method + " " + strings.Join(segs, "/")
}

// Transport counts every request that base sends for service.
func (m *Meter) Transport(service string, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if m == nil {
		return base
	}
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		m.Inc(service, Operation(r))
		return base.RoundTrip(r)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// DialOptions count every gRPC call made over the connection for service.
func (m *Meter) DialOptions(service string) []grpc.DialOption {
	if m == nil {
		return nil
	}
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			m.Inc(service, rpcName(method))
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			m.Inc(service, rpcName(method))
			return streamer(ctx, desc, cc, method, opts...)
		}),
	}
}

// rpcName keeps the method of "/package.Service/Method".
func rpcName(full string) string {
	if i := strings.LastIndex(full, "/"); i >= 0 {
		return full[i+1:]
	}
	return full
}
