package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/retry"
)

// testToken is distinctive so a leak into any error text is caught.
const testToken = "cf-tok-SECRET-9f8e7d6c5b4a3210-do-not-leak"

// start runs an emulator accepting testToken and a client for its default
// zone with fast retries; mod adjusts the client config.
func start(t *testing.T, opts EmulatorOptions, mod func(*Config)) (*Emulator, *Client) {
	t.Helper()
	opts.Token = testToken
	emu := NewEmulator(opts)
	t.Cleanup(emu.Close)
	cfg := Config{
		APIToken: testToken, ZoneID: DefaultZoneID, BaseURL: emu.URL(),
		RequestTimeout: 2 * time.Second,
		Retry:          retry.Policy{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond},
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return emu, c
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func noLeak(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), testToken) {
		t.Fatalf("error leaks the API token: %v", err)
	}
}

// byName keeps the records named name, in inventory order.
func byName(recs []Record, name string) []Record {
	var out []Record
	for _, r := range recs {
		if r.Name == name {
			out = append(out, r)
		}
	}
	return out
}

func TestUpsertAndRevert(t *testing.T) {
	t.Parallel()
	const name = "k8s.example.com"
	noise := []Record{
		{Name: "other.example.com", Type: "A", Content: "203.0.113.9", TTL: 1},
		{Name: name, Type: "AAAA", Content: "2001:db8::1", TTL: 1},
	}
	tests := []struct {
		name        string
		seed        []Record
		ttl         int
		upsertName  string
		ip          string
		wantCreated bool
		wantUpdated bool
		wantCurrent Record // compared on Content, TTL, Proxied, Comment, Tags
	}{
		{
			name: "absent: created", upsertName: name, ip: "192.0.2.10",
			wantCreated: true, wantCurrent: Record{Content: "192.0.2.10", TTL: 1},
		},
		{
			name: "name with trailing dot and capitals", upsertName: "K8S.Example.COM.", ip: "192.0.2.10",
			wantCreated: true, wantCurrent: Record{Content: "192.0.2.10", TTL: 1},
		},
		{
			name:       "different content: updated, comment and tags kept",
			seed:       []Record{{Name: name, Type: "A", Content: "198.51.100.7", TTL: 300, Comment: "hand-made", Tags: []string{"team:web"}}},
			upsertName: name, ip: "192.0.2.10", wantUpdated: true,
			wantCurrent: Record{Content: "192.0.2.10", TTL: 300, Comment: "hand-made", Tags: []string{"team:web"}},
		},
		{
			name:       "same content but proxied: updated to unproxied",
			seed:       []Record{{Name: name, Type: "A", Content: "192.0.2.10", TTL: 1, Proxied: true, IPv4Only: true}},
			upsertName: name, ip: "192.0.2.10", wantUpdated: true,
			wantCurrent: Record{Content: "192.0.2.10", TTL: 1, IPv4Only: true},
		},
		{
			name:       "configured TTL differs: updated",
			seed:       []Record{{Name: name, Type: "A", Content: "192.0.2.10", TTL: 300}},
			ttl:        120,
			upsertName: name, ip: "192.0.2.10", wantUpdated: true,
			wantCurrent: Record{Content: "192.0.2.10", TTL: 120},
		},
		{
			name:       "equal: unchanged",
			seed:       []Record{{Name: name, Type: "A", Content: "192.0.2.10", TTL: 300}},
			upsertName: name, ip: "192.0.2.10",
			wantCurrent: Record{Content: "192.0.2.10", TTL: 300},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			emu, c := start(t, EmulatorOptions{Records: append(append([]Record{}, noise...), tc.seed...)},
				func(cfg *Config) { cfg.TTL = tc.ttl })
			ctx := ctxFor(t, 10*time.Second)
			before := emu.Records()

			ch, err := c.UpsertA(ctx, tc.upsertName, tc.ip)
			if err != nil {
				t.Fatalf("UpsertA: %v", err)
			}
			if ch.Created != tc.wantCreated || (ch.Previous != nil) != tc.wantUpdated {
				t.Fatalf("change = %s (created %v, previous %v), want created %v updated %v",
					ch, ch.Created, ch.Previous, tc.wantCreated, tc.wantUpdated)
			}
			got := byName(emu.Records(), name)
			var as []Record
			for _, r := range got {
				if r.Type == "A" {
					as = append(as, r)
				}
			}
			if len(as) != 1 {
				t.Fatalf("A records for %s = %+v, want exactly one", name, as)
			}
			want := tc.wantCurrent
			want.ID, want.ZoneID, want.Name, want.Type = as[0].ID, DefaultZoneID, name, "A"
			if !reflect.DeepEqual(as[0], want) {
				t.Fatalf("record = %+v\nwant     %+v", as[0], want)
			}
			if ch.RecordID != as[0].ID || !reflect.DeepEqual(ch.Current, as[0]) {
				t.Fatalf("change current = %+v, emulator has %+v", ch.Current, as[0])
			}
			if tc.wantUpdated && !reflect.DeepEqual(*ch.Previous, byName(before, name)[len(byName(before, name))-1]) {
				t.Fatalf("previous = %+v, want the seeded record", *ch.Previous)
			}
			if !tc.wantCreated && !tc.wantUpdated {
				if n := emu.Counters().Get("create-record") + emu.Counters().Get("update-record"); n != 0 {
					t.Fatalf("unchanged upsert wrote %d times", n)
				}
			}

			writes := emu.Counters().Total()
			if err := c.Revert(ctx, ch); err != nil {
				t.Fatalf("Revert: %v", err)
			}
			if !reflect.DeepEqual(emu.Records(), before) {
				t.Fatalf("after revert:\n%+v\nwant exactly\n%+v", emu.Records(), before)
			}
			if !ch.Changed() && emu.Counters().Total() != writes {
				t.Fatalf("revert of an unchanged record made requests")
			}
			// Undo may run twice (retried undo, destroy after rollback).
			if err := c.Revert(ctx, ch); err != nil {
				t.Fatalf("second Revert: %v", err)
			}
		})
	}
}

func TestUpsertRefusesSeveralRecords(t *testing.T) {
	t.Parallel()
	emu, c := start(t, EmulatorOptions{Records: []Record{
		{Name: "rr.example.com", Type: "A", Content: "192.0.2.1", TTL: 1},
		{Name: "rr.example.com", Type: "A", Content: "192.0.2.2", TTL: 1},
	}}, nil)
	_, err := c.UpsertA(ctxFor(t, 5*time.Second), "rr.example.com", "192.0.2.3")
	if !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("err = %v, want ErrAmbiguous", err)
	}
	if transient, _ := retry.Classify(err); transient {
		t.Fatal("ambiguity classified transient")
	}
	if n := emu.Counters().Get("create-record") + emu.Counters().Get("update-record"); n != 0 {
		t.Fatalf("%d writes despite ambiguity", n)
	}
}

func TestInvalidInput(t *testing.T) {
	t.Parallel()
	emu, c := start(t, EmulatorOptions{}, nil)
	for _, ip := range []string{"", "not-an-ip", "2001:db8::1", "::ffff:192.0.2.1", "192.0.2.1/32"} {
		if _, err := c.UpsertA(ctxFor(t, time.Second), "x.example.com", ip); err == nil {
			t.Errorf("UpsertA(%q) succeeded", ip)
		}
	}
	if emu.Counters().Total() != 0 {
		t.Fatalf("invalid input reached the API: %v", emu.Counters().Snapshot())
	}
	for _, cfg := range []Config{{ZoneID: "z"}, {APIToken: "t"}, {APIToken: "t", ZoneID: "z", TTL: 5}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestDeleteAndRevertAreIdempotent(t *testing.T) {
	t.Parallel()
	emu, c := start(t, EmulatorOptions{Records: []Record{
		{Name: "k8s.example.com", Type: "A", Content: "198.51.100.7", TTL: 300},
	}}, nil)
	ctx := ctxFor(t, 5*time.Second)

	if err := c.DeleteRecord(ctx, "0123456789abcdef0123456789abcdef"); err != nil {
		t.Fatalf("delete of a missing record: %v", err)
	}
	if _, err := c.Record(ctx, "0123456789abcdef0123456789abcdef"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Record(missing) = %v, want ErrNotFound", err)
	}

	// Someone deletes the record we updated: revert has nothing to restore.
	ch, err := c.UpsertA(ctx, "k8s.example.com", "192.0.2.10")
	if err != nil || ch.Previous == nil {
		t.Fatalf("UpsertA = %v, %v", ch, err)
	}
	if err := c.DeleteRecord(ctx, ch.RecordID); err != nil {
		t.Fatal(err)
	}
	if err := c.Revert(ctx, ch); err != nil {
		t.Fatalf("revert after the record vanished: %v", err)
	}
	if recs := emu.Records(); len(recs) != 0 {
		t.Fatalf("records left: %+v", recs)
	}
}

func TestFindAPaginates(t *testing.T) {
	t.Parallel()
	const n = 2*pageSize + 30
	var seed []Record
	for i := range n {
		seed = append(seed, Record{Name: "rr.example.com", Type: "A", Content: fmt.Sprintf("10.0.%d.%d", i/256, i%256), TTL: 1})
		if i%50 == 0 {
			seed = append(seed, Record{Name: fmt.Sprintf("n%d.example.com", i), Type: "A", Content: "192.0.2.1", TTL: 1})
		}
	}
	emu, c := start(t, EmulatorOptions{Records: seed}, nil)
	recs, err := c.FindA(ctxFor(t, 5*time.Second), "rr.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n {
		t.Fatalf("FindA returned %d records, want %d", len(recs), n)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		if seen[r.ID] {
			t.Fatalf("record %s returned twice", r.ID)
		}
		seen[r.ID] = true
	}
	if got := emu.Counters().Get("list-records"); got != 3 {
		t.Fatalf("list requests = %d, want 3 pages", got)
	}
	// Destroy's path: delete everything FindA found.
	for _, r := range recs[:3] {
		if err := c.DeleteRecord(ctxFor(t, time.Second), r.ID); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(emu.Records()); got != len(seed)-3 {
		t.Fatalf("%d records after deleting 3 of %d", got, len(seed))
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	type op func(ctx context.Context, c *Client, emu *Emulator) error
	upsert := func(ctx context.Context, c *Client, _ *Emulator) error {
		_, err := c.UpsertA(ctx, "k8s.example.com", "192.0.2.10")
		return err
	}
	update := func(ctx context.Context, c *Client, emu *Emulator) error {
		if _, err := emu.Seed(Record{ZoneID: DefaultZoneID, Name: "k8s.example.com", Type: "A", Content: "198.51.100.7", TTL: 1}); err != nil {
			return err
		}
		return upsert(ctx, c, emu)
	}
	del := func(ctx context.Context, c *Client, emu *Emulator) error {
		r, err := emu.Seed(Record{ZoneID: DefaultZoneID, Name: "k8s.example.com", Type: "A", Content: "198.51.100.7", TTL: 1})
		if err != nil {
			return err
		}
		return c.DeleteRecord(ctx, r.ID)
	}
	tests := []struct {
		name      string
		point     string
		fault     emulator.Fault
		op        op
		timeout   time.Duration // caller's deadline; default 5s
		wantErr   string        // substring; "" means success
		transient bool          // classification of the error
		retries   int           // OnRetry calls expected (-1: don't check)
		minWait   time.Duration // smallest retry delay expected (Retry-After)
	}{
		{name: "list error is permanent", point: FaultListRecords, fault: emulator.Fault{Kind: emulator.Error}, op: upsert,
			wantErr: "HTTP 400 Bad Request: DNS Validation Error"},
		{name: "list unavailable twice then works", point: FaultListRecords, fault: emulator.Fault{Kind: emulator.Unavailable, Times: 2}, op: upsert, retries: 2},
		{name: "list unavailable until the deadline", point: FaultListRecords, fault: emulator.Fault{Kind: emulator.Unavailable}, op: upsert,
			timeout: 300 * time.Millisecond, wantErr: "HTTP 503", transient: true, retries: -1},
		{name: "list rate limited honours Retry-After", point: FaultListRecords, fault: emulator.Fault{Kind: emulator.RateLimit, Times: 1}, op: upsert,
			retries: 1, minWait: time.Second},
		{name: "list hang bounded per try", point: FaultListRecords, fault: emulator.Fault{Kind: emulator.Hang, Times: 1}, op: upsert, retries: 1},
		{name: "create error is permanent", point: FaultUpsertRecord, fault: emulator.Fault{Kind: emulator.Error}, op: upsert,
			wantErr: "create DNS record k8s.example.com"},
		{name: "create unavailable once then works", point: FaultUpsertRecord, fault: emulator.Fault{Kind: emulator.Unavailable, Times: 1}, op: upsert, retries: 1},
		{name: "create hang once then works", point: FaultUpsertRecord, fault: emulator.Fault{Kind: emulator.Hang, Times: 1}, op: upsert, retries: 1},
		{name: "create rate limited until the deadline", point: FaultUpsertRecord, fault: emulator.Fault{Kind: emulator.RateLimit}, op: upsert,
			timeout: 500 * time.Millisecond, wantErr: "HTTP 429", transient: true, retries: 0},
		{name: "update error is permanent", point: FaultUpsertRecord, fault: emulator.Fault{Kind: emulator.Error}, op: update,
			wantErr: "update DNS record k8s.example.com"},
		{name: "update unavailable once then works", point: FaultUpsertRecord, fault: emulator.Fault{Kind: emulator.Unavailable, Times: 1}, op: update, retries: 1},
		{name: "delete error is permanent", point: FaultDeleteRecord, fault: emulator.Fault{Kind: emulator.Error}, op: del,
			wantErr: "delete DNS record"},
		{name: "delete unavailable once then works", point: FaultDeleteRecord, fault: emulator.Fault{Kind: emulator.Unavailable, Times: 1}, op: del, retries: 1},
		{name: "delete rate limited once then works", point: FaultDeleteRecord, fault: emulator.Fault{Kind: emulator.RateLimit, Times: 1}, op: del, retries: 1, minWait: time.Second},
		{name: "delete hangs until the deadline", point: FaultDeleteRecord, fault: emulator.Fault{Kind: emulator.Hang}, op: del,
			timeout: 400 * time.Millisecond, wantErr: "no answer", transient: true, retries: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var waits []time.Duration
			emu, c := start(t, EmulatorOptions{}, func(cfg *Config) {
				cfg.RequestTimeout = 150 * time.Millisecond
				cfg.Retry.OnRetry = func(a retry.Attempt) {
					mu.Lock()
					defer mu.Unlock()
					waits = append(waits, a.Next)
				}
			})
			emu.Faults().Set(tc.point, tc.fault)
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			err := tc.op(ctxFor(t, timeout), c, emu)
			noLeak(t, err)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				if transient, _ := retry.Classify(err); transient != tc.transient {
					t.Fatalf("transient = %v, want %v (%v)", transient, tc.transient, err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if tc.retries >= 0 && len(waits) != tc.retries {
				t.Fatalf("retries = %d (%v), want %d", len(waits), waits, tc.retries)
			}
			for _, w := range waits {
				if w < tc.minWait {
					t.Fatalf("retried after %s, want at least %s", w, tc.minWait)
				}
			}
			if emu.Faults().Fired(tc.point) == 0 {
				t.Fatal("fault never fired")
			}
		})
	}
}

// TestRateLimitRetryAfterReported checks a 429 that is not retried still
// carries the server's delay for the caller's own loop.
func TestRateLimitRetryAfterReported(t *testing.T) {
	t.Parallel()
	emu, c := start(t, EmulatorOptions{RetryAfter: 3 * time.Second}, func(cfg *Config) { cfg.Retry.MaxAttempts = 1 })
	emu.Faults().Set(FaultListRecords, emulator.Fault{Kind: emulator.RateLimit})
	_, err := c.FindA(ctxFor(t, 5*time.Second), "k8s.example.com")
	transient, after := retry.Classify(err)
	if !transient || after != 3*time.Second {
		t.Fatalf("Classify(%v) = %v, %s; want transient after 3s", err, transient, after)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests || !apiErr.hasCode(971) {
		t.Fatalf("err = %#v, want the 429 APIError with code 971", err)
	}
}

// dropFirstPOST performs the first create but loses its answer, as when a
// connection resets after the server acted.
type dropFirstPOST struct {
	mu      sync.Mutex
	dropped bool
}

func (d *dropFirstPOST) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := http.DefaultTransport.RoundTrip(req)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil && req.Method == http.MethodPost && !d.dropped {
		d.dropped = true
		res.Body.Close()
		return nil, fmt.Errorf("read response: %w", syscall.ECONNRESET)
	}
	return res, err
}

func TestCreateRetryAdoptsRecordThatLanded(t *testing.T) {
	t.Parallel()
	emu, c := start(t, EmulatorOptions{}, func(cfg *Config) {
		cfg.HTTPClient = &http.Client{Transport: &dropFirstPOST{}}
	})
	ctx := ctxFor(t, 5*time.Second)
	ch, err := c.UpsertA(ctx, "k8s.example.com", "192.0.2.10")
	if err != nil {
		t.Fatal(err)
	}
	if !ch.Created || emu.Counters().Get("create-record") != 1 {
		t.Fatalf("change %s after %d creates; want one create, reported as created", ch, emu.Counters().Get("create-record"))
	}
	if err := c.Revert(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if recs := emu.Records(); len(recs) != 0 {
		t.Fatalf("records left after revert: %+v", recs)
	}
}

func TestAuthAndZoneErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		token    string
		zone     string
		wantErr  string
		notFound bool
	}{
		{name: "invalid token", token: testToken + "-revoked", zone: DefaultZoneID, wantErr: "HTTP 403 Forbidden: Invalid access token (code 9109)"},
		{name: "unknown zone", token: testToken, zone: "ffffffffffffffffffffffffffffffff", wantErr: "perhaps your object identifier is invalid? (code 7003)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			emu, c := start(t, EmulatorOptions{}, func(cfg *Config) { cfg.APIToken, cfg.ZoneID = tc.token, tc.zone })
			ctx := ctxFor(t, 5*time.Second)
			_, err := c.UpsertA(ctx, "k8s.example.com", "192.0.2.10")
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("UpsertA err = %v, want %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), tc.token) {
				t.Fatalf("error leaks the token: %v", err)
			}
			if transient, _ := retry.Classify(err); transient {
				t.Fatalf("classified transient: %v", err)
			}
			if emu.Counters().Get("list-records") != 1 {
				t.Fatalf("a permanent error was retried: %v", emu.Counters().Snapshot())
			}
			// Undo must not report success against a zone it cannot reach.
			err = c.DeleteRecord(ctx, "0123456789abcdef0123456789abcdef")
			if err == nil || errors.Is(err, ErrNotFound) || strings.Contains(err.Error(), tc.token) {
				t.Fatalf("DeleteRecord err = %v, want a non-NotFound error without the token", err)
			}
		})
	}
}

func TestUnreachableAPI(t *testing.T) {
	t.Parallel()
	emu := NewEmulator(EmulatorOptions{Token: testToken})
	url := emu.URL()
	emu.Close()
	c, err := New(Config{APIToken: testToken, ZoneID: DefaultZoneID, BaseURL: url,
		Retry: retry.Policy{Initial: 5 * time.Millisecond, Max: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.FindA(ctxFor(t, 200*time.Millisecond), "k8s.example.com")
	noLeak(t, err)
	if transient, _ := retry.Classify(err); err == nil || !transient {
		t.Fatalf("err = %v, want a transient connection error", err)
	}
}
