package ipdetect

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/retry"
)

// service describes one emulated service for a test case.
type service struct {
	answer string
	fault  emulator.Kind // "" for none
}

func startServices(t *testing.T, svcs []service) ([]*Emulator, []string) {
	t.Helper()
	emus := make([]*Emulator, len(svcs))
	urls := make([]string, len(svcs))
	for i, s := range svcs {
		e := NewEmulator(s.answer)
		t.Cleanup(e.Close)
		if s.fault != "" {
			e.Faults().Set(FaultPoint, emulator.Fault{Kind: s.fault})
		}
		emus[i], urls[i] = e, e.URL()
	}
	return emus, urls
}

func TestDetect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		services       []service
		allowNonPublic bool
		want           string   // address; "" when an error is expected
		wantAsked      []int    // requests per service
		wantErr        []string // substrings of the error
		transient      bool
	}{
		{
			name:     "first answers",
			services: []service{{answer: "8.8.8.8"}, {answer: "1.1.1.1"}},
			want:     "8.8.8.8", wantAsked: []int{1, 0},
		},
		{
			name:     "first unavailable, second used",
			services: []service{{answer: "8.8.8.8", fault: emulator.Unavailable}, {answer: "1.1.1.1"}},
			want:     "1.1.1.1", wantAsked: []int{1, 1},
		},
		{
			name:     "garbage rejected, next used",
			services: []service{{answer: "<html>hello</html>"}, {answer: "  1.1.1.1  "}},
			want:     "1.1.1.1", wantAsked: []int{1, 1},
		},
		{
			name:     "private rejected, next used",
			services: []service{{answer: "10.1.2.3"}, {answer: "100.64.0.1"}, {answer: "9.9.9.9"}},
			want:     "9.9.9.9", wantAsked: []int{1, 1, 1},
		},
		{
			name:     "IPv6 answer rejected",
			services: []service{{answer: "2001:4860:4860::8888"}, {answer: "9.9.9.9"}},
			want:     "9.9.9.9", wantAsked: []int{1, 1},
		},
		{
			name:           "sandbox accepts loopback",
			services:       []service{{answer: "127.0.0.1"}},
			allowNonPublic: true,
			want:           "127.0.0.1", wantAsked: []int{1},
		},
		{
			name: "all fail: each answer listed",
			services: []service{
				{answer: "8.8.8.8", fault: emulator.Unavailable},
				{answer: "8.8.8.8", fault: emulator.Error},
				{answer: "garbage\x1b[31m"},
				{answer: "192.168.1.20"},
				{answer: "8.8.8.8", fault: emulator.RateLimit},
			},
			wantAsked: []int{1, 1, 1, 1, 1},
			wantErr: []string{
				"HTTP 503", "HTTP 500", `"garbage\x1b[31m": not an IP address`,
				`"192.168.1.20": not public: private (RFC 1918)`, "HTTP 429", "set operator-ip",
			},
			transient: true,
		},
		{
			name:      "all answer unusable addresses: permanent",
			services:  []service{{answer: "127.0.0.1"}, {answer: "0.0.0.0"}},
			wantAsked: []int{1, 1},
			wantErr:   []string{"not public: loopback", "not usable: unspecified"},
		},
		{
			name:           "sandbox still refuses unspecified",
			services:       []service{{answer: "0.0.0.0"}},
			allowNonPublic: true,
			wantAsked:      []int{1},
			wantErr:        []string{"not usable: unspecified"},
		},
		{
			name:      "answer too long",
			services:  []service{{answer: strings.Repeat("1", 200)}},
			wantAsked: []int{1},
			wantErr:   []string{"too long"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			emus, urls := startServices(t, tc.services)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			d := Detector{URLs: urls, PerTry: time.Second, AllowNonPublic: tc.allowNonPublic}
			got, err := d.Detect(ctx)
			if tc.want != "" {
				if err != nil || got != netip.MustParseAddr(tc.want) {
					t.Fatalf("Detect = %v, %v; want %s", got, err, tc.want)
				}
			} else {
				if err == nil {
					t.Fatalf("Detect = %v, want an error", got)
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				if transient, _ := retry.Classify(err); transient != tc.transient {
					t.Errorf("transient = %v, want %v", transient, tc.transient)
				}
			}
			for i, e := range emus {
				if n := e.Counters().Get("ip"); n != tc.wantAsked[i] {
					t.Errorf("service %d asked %d times, want %d", i, n, tc.wantAsked[i])
				}
			}
		})
	}
}

func TestDetectBoundsEachTry(t *testing.T) {
	t.Parallel()
	emus, urls := startServices(t, []service{{answer: "8.8.8.8", fault: emulator.Hang}, {answer: "1.1.1.1"}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	begin := time.Now()
	got, err := Detector{URLs: urls, PerTry: 100 * time.Millisecond}.Detect(ctx)
	if err != nil || got != netip.MustParseAddr("1.1.1.1") {
		t.Fatalf("Detect = %v, %v", got, err)
	}
	if took := time.Since(begin); took > 2*time.Second {
		t.Fatalf("took %s: the hanging service was not cut off", took)
	}
	if emus[0].Faults().Fired(FaultPoint) != 1 {
		t.Fatal("first service was not asked")
	}

	// Every service hangs: the error names the per-try timeout for each.
	emus[1].Faults().Set(FaultPoint, emulator.Fault{Kind: emulator.Hang})
	_, err = Detector{URLs: urls, PerTry: 50 * time.Millisecond}.Detect(ctx)
	if err == nil || strings.Count(err.Error(), "no answer within 50ms") != 2 {
		t.Fatalf("err = %v, want both services timed out", err)
	}
}

func TestDetectStopsWithContext(t *testing.T) {
	t.Parallel()
	_, urls := startServices(t, []service{{answer: "8.8.8.8", fault: emulator.Hang}, {answer: "1.1.1.1"}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := Detector{URLs: urls, PerTry: 5 * time.Second}.Detect(ctx)
	if err == nil || !strings.Contains(err.Error(), "stopped waiting") || !strings.Contains(err.Error(), "not asked") {
		t.Fatalf("err = %v, want the second service skipped after the deadline", err)
	}
}

func TestDetectUnreachable(t *testing.T) {
	t.Parallel()
	e := NewEmulator("8.8.8.8")
	url := e.URL()
	e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Detector{URLs: []string{url}}.Detect(ctx)
	if transient, _ := retry.Classify(err); err == nil || !transient || !strings.Contains(err.Error(), url) {
		t.Fatalf("err = %v, want a transient error naming %s", err, url)
	}
}

func TestEmulatorSetAnswerAndLatency(t *testing.T) {
	t.Parallel()
	emus, urls := startServices(t, []service{{answer: "8.8.8.8"}})
	emus[0].SetAnswer("9.9.9.9")
	emus[0].Faults().SetLatency(FaultPoint, 30*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	begin := time.Now()
	got, err := Detector{URLs: urls}.Detect(ctx)
	if err != nil || got.String() != "9.9.9.9" || time.Since(begin) < 30*time.Millisecond {
		t.Fatalf("Detect = %v, %v after %s", got, err, time.Since(begin))
	}
}

func TestParseOperatorIP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    string // "" means rejected
		wantErr string
	}{
		{in: "8.8.8.8", want: "8.8.8.8"},
		{in: " 1.1.1.1\n", want: "1.1.1.1"},
		{in: "::ffff:8.8.4.4", want: "8.8.4.4"},
		{in: "", wantErr: "not an IP address"},
		{in: "example.com", wantErr: "not an IP address"},
		{in: "8.8.8.8/32", wantErr: "not an IP address"},
		{in: "2001:4860:4860::8888", wantErr: "not an IPv4 address"},
		{in: "10.0.0.1", wantErr: "private"},
		{in: "172.20.1.1", wantErr: "private"},
		{in: "192.168.0.10", wantErr: "private"},
		{in: "127.0.0.1", wantErr: "loopback"},
		{in: "169.254.169.254", wantErr: "link-local"},
		{in: "100.100.1.1", wantErr: "carrier-grade NAT"},
		{in: "192.0.2.4", wantErr: "documentation"},
		{in: "203.0.113.4", wantErr: "documentation"},
		{in: "198.18.0.1", wantErr: "benchmarking"},
		{in: "0.0.0.0", wantErr: "unspecified"},
		{in: "224.0.0.1", wantErr: "multicast"},
		{in: "255.255.255.255", wantErr: "broadcast"},
		{in: "250.1.1.1", wantErr: "reserved"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseOperatorIP(tc.in)
			if tc.want != "" {
				if err != nil || got.String() != tc.want {
					t.Fatalf("ParseOperatorIP(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParseOperatorIP(%q) = %v, %v; want error with %q", tc.in, got, err, tc.wantErr)
			}
		})
	}
	if a, err := (Detector{AllowNonPublic: true}).Parse("10.0.0.1"); err != nil || a.String() != "10.0.0.1" {
		t.Fatalf("sandbox Parse = %v, %v", a, err)
	}
}

func TestDefaultURLs(t *testing.T) {
	t.Parallel()
	u := DefaultURLs()
	if len(u) != 3 || u[0] != "https://checkip.amazonaws.com" {
		t.Fatalf("DefaultURLs = %v", u)
	}
	u[0] = "changed"
	if DefaultURLs()[0] == "changed" {
		t.Fatal("DefaultURLs shares its slice")
	}
}
