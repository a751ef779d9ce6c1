// Package ipdetect finds the operator's public IPv4 address, which the
// temporary Talos firewall rules admit as a /32 while the cluster bootstraps.
// It asks plain-text "what is my IP" services in turn; the answer must be a
// public IPv4 address, because a private or translated one would lock the
// operator out of their own cluster.
package ipdetect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/retry"
)

// DefaultPerTry bounds one service: they answer in milliseconds when healthy,
// and a slow one must not hold up the next.
const DefaultPerTry = 3 * time.Second

// maxAnswer is far more than any IPv4 text; longer bodies are not an address.
const maxAnswer = 64

// DefaultURLs are the services asked when Detector.URLs is empty, in order.
// A function rather than a variable so nobody can change them for everyone.
func DefaultURLs() []string {
	return []string{
		"https://checkip.amazonaws.com",
		"https://ifconfig.me/ip",
		"https://icanhazip.com",
	}
}

// Detector asks services for the caller's public IPv4 address. The zero
// value uses DefaultURLs, DefaultPerTry and an IPv4-only HTTP client.
type Detector struct {
	URLs   []string
	PerTry time.Duration
	// HTTPClient replaces the default client, which dials over IPv4 only so
	// that dual-stack services answer with the IPv4 address we need.
	HTTPClient *http.Client
	// AllowNonPublic accepts any unicast IPv4 address (loopback, private…),
	// for the sandbox, whose emulated service answers 127.0.0.1.
	AllowNonPublic bool
}

// Detect asks each service in turn and returns the first acceptable address.
// When none gives one, the error lists what each service answered. It is
// transient when at least one service failed in a way a retry could fix.
func (d Detector) Detect(ctx context.Context) (netip.Addr, error) {
	urls := d.URLs
	if len(urls) == 0 {
		urls = DefaultURLs()
	}
	perTry := d.PerTry
	if perTry <= 0 {
		perTry = DefaultPerTry
	}
	client := d.HTTPClient
	if client == nil {
		client = ipv4Client()
	}
	var answers []string
	transient := false
	for _, u := range urls {
		if ctx.Err() != nil {
			answers = append(answers, fmt.Sprintf("%s: not asked (%v)", u, ctx.Err()))
			transient = true
			continue
		}
		addr, err := d.ask(ctx, client, u, perTry)
		if err == nil {
			return addr, nil
		}
		if t, _ := retry.Classify(err); t {
			transient = true
		}
		answers = append(answers, fmt.Sprintf("%s: %v", u, err))
	}
	err := fmt.Errorf("detect operator public IPv4: no service gave one (set operator-ip to skip detection): %s",
		strings.Join(answers, "; "))
	if transient {
		return netip.Addr{}, retry.Transient(err, 0)
	}
	return netip.Addr{}, retry.Permanent(err)
}

// ask queries one service within perTry.
func (d Detector) ask(ctx context.Context, client *http.Client, url string, perTry time.Duration) (netip.Addr, error) {
	tryCtx, cancel := context.WithTimeout(ctx, perTry)
	defer cancel()
	req, err := http.NewRequestWithContext(tryCtx, http.MethodGet, url, nil)
	if err != nil {
		return netip.Addr{}, retry.Permanent(fmt.Errorf("bad URL: %w", err))
	}
	// Some services (ifconfig.me) answer HTML to browsers and text to curl.
	req.Header.Set("User-Agent", "curl/8 (rawkode-cloud)")
	req.Header.Set("Accept", "text/plain")
	res, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return netip.Addr{}, fmt.Errorf("stopped waiting: %w", ctx.Err())
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return netip.Addr{}, retry.Transient(fmt.Errorf("no answer within %s", perTry), 0)
		}
		return netip.Addr{}, err // network errors are classified by retry.Classify
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer+1))
	if err != nil {
		return netip.Addr{}, retry.Transient(fmt.Errorf("reading answer: %w", err), 0)
	}
	if res.StatusCode != http.StatusOK {
		err := fmt.Errorf("HTTP %d %s", res.StatusCode, excerpt(body))
		if retry.HTTPTransient(res.StatusCode) {
			return netip.Addr{}, retry.Transient(err, 0)
		}
		return netip.Addr{}, retry.Permanent(err)
	}
	if len(body) > maxAnswer {
		return netip.Addr{}, retry.Permanent(fmt.Errorf("answered %s…, too long for an address", excerpt(body)))
	}
	addr, err := parse(string(body), d.AllowNonPublic)
	if err != nil {
		return netip.Addr{}, retry.Permanent(fmt.Errorf("answered %s: %w", excerpt(body), err))
	}
	return addr, nil
}

// excerpt quotes a trimmed, bounded piece of an answer for error messages;
// quoting keeps control characters from a hostile service off the terminal.
func excerpt(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > maxAnswer {
		s = s[:maxAnswer]
	}
	return fmt.Sprintf("%q", s)
}

// ParseOperatorIP validates the operator-ip setting: a public IPv4 address,
// surrounding white space allowed.
func ParseOperatorIP(s string) (netip.Addr, error) {
	addr, err := parse(s, false)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("operator IP %q: %w", strings.TrimSpace(s), err)
	}
	return addr, nil
}

// Parse validates an address under this detector's rules (AllowNonPublic
// included), for an operator-ip override given in the sandbox.
func (d Detector) Parse(s string) (netip.Addr, error) {
	addr, err := parse(s, d.AllowNonPublic)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("operator IP %q: %w", strings.TrimSpace(s), err)
	}
	return addr, nil
}

func parse(s string, allowNonPublic bool) (netip.Addr, error) {
	addr, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, errors.New("not an IP address")
	}
	if addr.Zone() != "" || !addr.Unmap().Is4() {
		return netip.Addr{}, errors.New("not an IPv4 address")
	}
	addr = addr.Unmap()
	if reason := nonUnicast(addr); reason != "" {
		return netip.Addr{}, fmt.Errorf("not usable: %s", reason)
	}
	if reason := nonPublic(addr); reason != "" && !allowNonPublic {
		return netip.Addr{}, fmt.Errorf("not public: %s", reason)
	}
	return addr, nil
}

// nonUnicast names why addr can never be a client's source address.
func nonUnicast(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return "unspecified"
	case a.IsMulticast():
		return "multicast"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	return ""
}

// nonPublic names the special-purpose block (RFC 6890 and successors) addr
// falls in, or "" for a globally routable address.
func nonPublic(a netip.Addr) string {
	blocks := []struct {
		prefix string
		reason string
	}{
		{"0.0.0.0/8", "\"this network\" (RFC 791)"},
		{"10.0.0.0/8", "private (RFC 1918)"},
		{"100.64.0.0/10", "carrier-grade NAT (RFC 6598)"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.0.0/16", "link-local"},
		{"172.16.0.0/12", "private (RFC 1918)"},
		{"192.0.0.0/24", "IETF protocol assignments (RFC 6890)"},
		{"192.0.2.0/24", "documentation (RFC 5737)"},
		{"192.88.99.0/24", "6to4 relay anycast (RFC 7526)"},
		{"192.168.0.0/16", "private (RFC 1918)"},
		{"198.18.0.0/15", "benchmarking (RFC 2544)"},
		{"198.51.100.0/24", "documentation (RFC 5737)"},
		{"203.0.113.0/24", "documentation (RFC 5737)"},
		{"240.0.0.0/4", "reserved (RFC 1112)"},
	}
	for _, b := range blocks {
		if netip.MustParsePrefix(b.prefix).Contains(a) {
			return b.reason
		}
	}
	return ""
}

// ipv4Client dials over IPv4 only: a dual-stack service reached over IPv6
// would answer with an IPv6 address, useless for the IPv4 firewall rule.
// IPv4Client is the default client, for callers that wrap its transport.
func IPv4Client() *http.Client { return ipv4Client() }

func ipv4Client() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
		return dialer.DialContext(ctx, "tcp4", addr)
	}
	return &http.Client{Transport: tr}
}
