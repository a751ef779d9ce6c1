package scaleway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// testSecret is distinctive so that any leak into an error is obvious.
const testSecret = "5ec2e7a1-c0de-4bad-8f00-d15c0ba11e55"

func faultOf(spec string) emulator.Fault {
	_, f, err := emulator.ParseFault("p=" + spec)
	if err != nil {
		panic(err)
	}
	return f
}

func fastDelays() *Delays {
	d := 3 * time.Millisecond
	return &Delays{AssignIP: d, Deliver: d, StartInstall: d, Install: d, Delete: d}
}

// retries records the retries reported through Config.Retry.OnRetry.
type retries struct {
	mu sync.Mutex
	a  []retry.Attempt
}

func (r *retries) add(a retry.Attempt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.a = append(r.a, a)
}

func (r *retries) get() []retry.Attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.a)
}

type env struct {
	emu     *Emulator
	client  *Client
	retries *retries
}

func newEnv(t *testing.T, opts EmulatorOptions) env {
	t.Helper()
	if opts.Delays == nil {
		opts.Delays = fastDelays()
	}
	opts.SecretKey = testSecret
	e := NewEmulator(opts)
	t.Cleanup(e.Close)
	r := &retries{}
	cfg := e.Config()
	cfg.Retry = retry.Policy{Initial: 2 * time.Millisecond, Max: 10 * time.Millisecond, OnRetry: r.add}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return env{emu: e, client: c, retries: r}
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func spec(name string, tags ...string) ServerSpec {
	return ServerSpec{Name: name, OfferID: CloudInitOfferID, OSID: UbuntuOSID, Hostname: name,
		SSHKeyIDs: []string{SeedSSHKeyID}, UserData: []byte("#cloud-config\n"), Tags: tags}
}

func waitOpts(states *[]string) wait.Options {
	var mu sync.Mutex
	return wait.Options{Interval: time.Millisecond, OnState: func(s string) {
		mu.Lock()
		defer mu.Unlock()
		*states = append(*states, s)
	}}
}

func assertPermanent(t *testing.T, err error) {
	t.Helper()
	if tr, _ := retry.Classify(err); tr || err == nil {
		t.Errorf("err %v: want a permanent error", err)
	}
}

func assertNoSecret(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), testSecret) {
		t.Errorf("error leaks the secret key: %v", err)
	}
}

func TestHappyPath(t *testing.T) {
	t.Parallel()
	installed := make(chan Server, 1)
	deleted := make(chan string, 1)
	ev := newEnv(t, EmulatorOptions{
		OnInstalled: func(s Server) { installed <- s },
		OnDeleted:   func(id string) { deleted <- id },
	})
	c, ctx := ev.client, testCtx(t, 10*time.Second)

	keys, err := c.ListSSHKeyIDs(ctx)
	if err != nil || !slices.Equal(keys, []string{SeedSSHKeyID}) {
		t.Fatalf("ListSSHKeyIDs = %v, %v", keys, err)
	}
	if err := c.CheckCompatibility(ctx, CloudInitOfferID, UbuntuOSID); err != nil {
		t.Fatalf("CheckCompatibility: %v", err)
	}
	sp := spec("node-1", ClusterTags("demo")...)
	sp.SSHKeyIDs = keys
	created, err := c.CreateServer(ctx, sp)
	if err != nil {
		t.Fatalf("CreateServer: %v", err)
	}
	if created.Status != "ordered" || created.InstallStatus != "to_install" || created.IPv4 != "" {
		t.Errorf("created = %+v", created)
	}

	var states []string
	srv, err := c.WaitReady(ctx, created.ID, waitOpts(&states))
	if err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if srv.Status != "ready" || srv.InstallStatus != "completed" || srv.Zone != DefaultZone || srv.OfferID != CloudInitOfferID {
		t.Errorf("ready server = %+v", srv)
	}
	if ip, err := netip.ParseAddr(srv.IPv4); err != nil || !netip.MustParsePrefix("203.0.113.0/24").Contains(ip) {
		t.Errorf("IPv4 = %q, want one from 203.0.113.0/24", srv.IPv4)
	}
	if states[len(states)-1] != "ready/completed" || !slices.Contains(states, "ordered") {
		t.Errorf("states = %v", states)
	}
	select {
	case s := <-installed:
		if s.ID != created.ID || s.InstallStatus != "completed" {
			t.Errorf("OnInstalled(%+v)", s)
		}
	case <-ctx.Done():
		t.Fatal("OnInstalled not called")
	}

	found, err := c.FindServers(ctx, ClusterTags("demo")...)
	if err != nil || len(found) != 1 || found[0].ID != created.ID {
		t.Fatalf("FindServers = %+v, %v", found, err)
	}
	if err := c.DeleteServer(ctx, created.ID, wait.Options{Interval: time.Millisecond}); err != nil {
		t.Fatalf("DeleteServer: %v", err)
	}
	if left := ev.emu.Servers(); len(left) != 0 {
		t.Errorf("servers left: %+v", left)
	}
	select {
	case id := <-deleted:
		if id != created.ID {
			t.Errorf("OnDeleted(%s)", id)
		}
	case <-ctx.Done():
		t.Fatal("OnDeleted not called")
	}
	// Undo may run twice: deleting a gone server succeeds.
	if err := c.DeleteServer(ctx, created.ID, wait.Options{Interval: time.Millisecond}); err != nil {
		t.Errorf("second DeleteServer: %v", err)
	}
	if _, err := c.GetServer(ctx, created.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetServer after delete: %v, want ErrNotFound", err)
	}
	if n := ev.emu.Counters().Get("create-server"); n != 1 {
		t.Errorf("create-server calls = %d, want 1", n)
	}
}

func TestCheckCompatibility(t *testing.T) {
	t.Parallel()
	ev := newEnv(t, EmulatorOptions{})
	tests := []struct {
		name, offer, os, want string
	}{
		{"ok", CloudInitOfferID, UbuntuOSID, ""},
		{"offer without cloud-init", NoCloudInitOfferID, UbuntuOSID, "offer " + NoCloudInitOfferID + " (EM-A115X-SSD) does not support cloud-init"},
		{"out of stock", OutOfStockOfferID, UbuntuOSID, "offer " + OutOfStockOfferID + " (EM-L110X-SATA) is out of stock"},
		{"OS without cloud-init", CloudInitOfferID, NoCloudInitOSID, "OS " + NoCloudInitOSID + " (Debian 10 (Buster)) does not support cloud-init"},
		{"unknown offer", "00000000-0000-4000-8000-000000000001", UbuntuOSID, "offer 00000000-0000-4000-8000-000000000001 does not exist"},
		{"unknown OS", CloudInitOfferID, "00000000-0000-4000-8000-000000000002", "OS 00000000-0000-4000-8000-000000000002 does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ev.client.CheckCompatibility(testCtx(t, 5*time.Second), tt.offer, tt.os)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrIncompatible mentioning %q", err, tt.want)
			}
			assertPermanent(t, err)
		})
	}
}

func TestListSSHKeyIDs(t *testing.T) {
	t.Parallel()
	k := func(id string, disabled bool) SSHKey {
		return SSHKey{ID: id, Name: id, PublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICJEoOOgQBLJPs4g/XcPTKT82NywNPpxeuA20FlOPlpO", Disabled: disabled}
	}
	tests := []struct {
		name    string
		opts    EmulatorOptions
		want    []string
		wantErr error
	}{
		{"seeded", EmulatorOptions{}, []string{SeedSSHKeyID}, nil},
		{"none", EmulatorOptions{NoSSHKeys: true}, nil, ErrNoSSHKeys},
		{"only disabled", EmulatorOptions{SSHKeys: []SSHKey{k("a", true)}}, nil, ErrNoSSHKeys},
		{"all pages, enabled only", EmulatorOptions{PageSize: 2, SSHKeys: []SSHKey{k("a", false), k("b", true), k("c", false), k("d", false), k("e", false)}},
			[]string{"a", "c", "d", "e"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev := newEnv(t, tt.opts)
			got, err := ev.client.ListSSHKeyIDs(testCtx(t, 5*time.Second))
			if !errors.Is(err, tt.wantErr) || !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, %v; want %v, %v", got, err, tt.want, tt.wantErr)
			}
			if err != nil {
				assertPermanent(t, err)
				if !strings.Contains(err.Error(), "SSH key") {
					t.Errorf("error does not say what is missing: %v", err)
				}
			}
		})
	}
}

// TestCreateOnIncompatibleOfferNotRetried orders directly on the offer
// without cloud-init: the 503 is permanent and sent once.
func TestCreateOnIncompatibleOfferNotRetried(t *testing.T) {
	t.Parallel()
	ev := newEnv(t, EmulatorOptions{})
	sp := spec("x")
	sp.OfferID = NoCloudInitOfferID
	_, err := ev.client.CreateServer(testCtx(t, 5*time.Second), sp)
	if !errors.Is(err, ErrIncompatible) || errors.Is(err, ErrMaybeCreated) || !strings.Contains(err.Error(), cloudInitUnsupported) {
		t.Fatalf("err = %v", err)
	}
	assertPermanent(t, err)
	if n := ev.emu.Counters().Get("create-server"); n != 1 {
		t.Errorf("create-server calls = %d, want 1", n)
	}
	if len(ev.emu.Servers()) != 0 {
		t.Errorf("a server was created")
	}
}

// TestRequestFaults runs every request fault kind against every call.
func TestRequestFaults(t *testing.T) {
	t.Parallel()
	type call struct {
		point, op string
		do        func(ctx context.Context, c *Client, id string) error
	}
	calls := []call{
		{FaultListSSHKeys, "list-ssh-keys", func(ctx context.Context, c *Client, _ string) error {
			_, err := c.ListSSHKeyIDs(ctx)
			return err
		}},
		{FaultCreateServer, "create-server", func(ctx context.Context, c *Client, _ string) error {
			_, err := c.CreateServer(ctx, spec("faulty"))
			return err
		}},
		{FaultGetServer, "get-server", func(ctx context.Context, c *Client, id string) error {
			_, err := c.GetServer(ctx, id)
			return err
		}},
		{FaultDeleteServer, "delete-server", func(ctx context.Context, c *Client, id string) error {
			return c.DeleteServer(ctx, id, wait.Options{Interval: time.Millisecond})
		}},
		{FaultListServers, "list-servers", func(ctx context.Context, c *Client, _ string) error {
			_, err := c.FindServers(ctx, ToolTag)
			return err
		}},
	}
	kinds := []string{"error", "unavailable@1", "ratelimit@1", "hang"}
	for _, cl := range calls {
		for _, kind := range kinds {
			t.Run(cl.op+"/"+kind, func(t *testing.T) {
				t.Parallel()
				ev := newEnv(t, EmulatorOptions{})
				existing, err := ev.client.CreateServer(testCtx(t, 5*time.Second), spec("existing", ToolTag))
				if err != nil {
					t.Fatal(err)
				}
				if cl.point == FaultDeleteServer {
					// An ordered server refuses DELETE until it is
					// delivered (TestDeleteRefusedWhileOrdered): start
					// from one that can be deleted.
					if _, err := ev.client.WaitReady(testCtx(t, 5*time.Second), existing.ID, wait.Options{Interval: time.Millisecond}); err != nil {
						t.Fatal(err)
					}
				}
				before := ev.emu.Counters().Get(cl.op)
				ev.emu.Faults().Set(cl.point, faultOf(kind))
				timeout := 5 * time.Second
				if kind == "hang" {
					timeout = 300 * time.Millisecond
				}
				err = cl.do(testCtx(t, timeout), ev.client, existing.ID)
				calls := ev.emu.Counters().Get(cl.op) - before
				assertNoSecret(t, err)
				isCreate := cl.point == FaultCreateServer

				switch {
				case kind == "error":
					assertPermanent(t, err)
					if calls != 1 {
						t.Errorf("calls = %d, want 1 (permanent errors are not retried)", calls)
					}
				case kind == "unavailable@1" && isCreate:
					// Ambiguous for a POST: never retried.
					if !errors.Is(err, ErrMaybeCreated) || calls != 1 {
						t.Errorf("err = %v, calls = %d; want ErrMaybeCreated after 1 call", err, calls)
					}
					assertPermanent(t, err)
				case kind == "unavailable@1" || kind == "ratelimit@1":
					if err != nil {
						t.Fatalf("want success after one retry, got %v", err)
					}
					att := ev.retries.get()
					if len(att) != 1 {
						t.Fatalf("retries = %v, want 1", att)
					}
					if kind == "ratelimit@1" && att[0].Next < time.Second {
						t.Errorf("retry after %v, want >= Retry-After 1s", att[0].Next)
					}
				case kind == "hang":
					if err == nil {
						t.Fatal("want an error when the API never answers")
					}
					if isCreate && !errors.Is(err, ErrMaybeCreated) {
						t.Errorf("err = %v, want ErrMaybeCreated", err)
					}
				}
				if isCreate && kind != "ratelimit@1" && len(ev.emu.Servers()) != 1 {
					t.Errorf("servers = %d, want only the pre-existing one", len(ev.emu.Servers()))
				}
			})
		}
	}
}

func TestInstallFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind      string
		wantErr   error
		wantMsg   string
		lastState string
	}{
		{"error", ErrServerFailed, "OS install failed", "ready/error"},
		{"unavailable", ErrServerFailed, "is out_of_stock", "out_of_stock"},
		{"ratelimit", ErrServerFailed, "is locked", "locked"},
		{"never", wait.ErrTimeout, "last state: ready/installing", "ready/installing"},
		{"hang", wait.ErrTimeout, "last state: ordered", "ordered"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			t.Parallel()
			ev := newEnv(t, EmulatorOptions{})
			ev.emu.Faults().Set(FaultInstall, faultOf(tt.kind))
			created, err := ev.client.CreateServer(testCtx(t, 5*time.Second), spec("n"))
			if err != nil {
				t.Fatal(err)
			}
			timeout := 5 * time.Second
			if tt.wantErr == wait.ErrTimeout {
				timeout = 300 * time.Millisecond
				// The IP comes before delivery, even when delivery never does.
				if srv, err := ev.client.WaitIPv4(testCtx(t, 5*time.Second), created.ID, wait.Options{Interval: time.Millisecond}); err != nil || srv.IPv4 == "" {
					t.Fatalf("WaitIPv4 = %+v, %v", srv, err)
				}
			}
			var states []string
			_, err = ev.client.WaitReady(testCtx(t, timeout), created.ID, waitOpts(&states))
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tt.wantErr, tt.wantMsg)
			}
			if tt.wantErr == ErrServerFailed {
				assertPermanent(t, err)
			}
			if got := states[len(states)-1]; got != tt.lastState {
				t.Errorf("last state = %q, want %q (all: %v)", got, tt.lastState, states)
			}
		})
	}
}

// TestWaitReadyRetriesTransientPolls: failed polls are reported through
// opts.OnRetry and do not end the wait.
func TestWaitReadyRetriesTransientPolls(t *testing.T) {
	t.Parallel()
	ev := newEnv(t, EmulatorOptions{})
	ctx := testCtx(t, 5*time.Second)
	created, err := ev.client.CreateServer(ctx, spec("n"))
	if err != nil {
		t.Fatal(err)
	}
	ev.emu.Faults().Set(FaultGetServer, faultOf("unavailable@2"))
	var mu sync.Mutex
	var polls []retry.Attempt
	opts := wait.Options{Interval: time.Millisecond, OnRetry: func(a retry.Attempt) {
		mu.Lock()
		defer mu.Unlock()
		polls = append(polls, a)
	}}
	if _, err := ev.client.WaitReady(ctx, created.ID, opts); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(polls) != 2 {
		t.Errorf("OnRetry called %d times, want 2", len(polls))
	}
}

func TestFindServersAllPagesAndTags(t *testing.T) {
	t.Parallel()
	ev := newEnv(t, EmulatorOptions{PageSize: 2})
	ctx := testCtx(t, 5*time.Second)
	var want []string
	for i := range 5 {
		s, err := ev.client.CreateServer(ctx, spec("a", ClusterTags("a")...))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, s.ID)
		if i == 0 {
			if _, err := ev.client.CreateServer(ctx, spec("b", ClusterTags("b")...)); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := ev.client.FindServers(ctx, ClusterTags("a")...)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range got {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("found %v, want %v", ids, want)
	}
}

// TestCreateRetriedOnlyWhenNothingWasSent: connection refused proves the
// POST never left, so it is retried until the deadline.
func TestCreateRetriedOnlyWhenNothingWasSent(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	r := &retries{}
	c, err := New(Config{AccessKey: SandboxAccessKey, SecretKey: testSecret, ProjectID: SeedProjectID, APIURL: url,
		Retry: retry.Policy{Initial: time.Millisecond, Max: 2 * time.Millisecond, MaxAttempts: 3, OnRetry: r.add}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateServer(testCtx(t, 5*time.Second), spec("n"))
	if err == nil || errors.Is(err, ErrMaybeCreated) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err = %v, want connection refused, not ErrMaybeCreated", err)
	}
	if n := len(r.get()); n != 2 {
		t.Errorf("retries = %d, want 2 (3 attempts)", n)
	}
	assertNoSecret(t, err)
}

func TestSecretNeverInErrors(t *testing.T) {
	t.Parallel()
	const marker = "SUPERSECRET-do-not-print"
	if _, err := New(Config{AccessKey: SandboxAccessKey, SecretKey: marker, ProjectID: SeedProjectID}); err == nil || strings.Contains(err.Error(), marker) {
		t.Errorf("New with a malformed secret: %v", err)
	}
	ev := newEnv(t, EmulatorOptions{})
	const wrong = "0badc0de-5ec2-4e7a-9f00-0000deadbeef"
	cfg := ev.emu.Config()
	cfg.SecretKey = wrong
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 5*time.Second)
	_, err = c.ListSSHKeyIDs(ctx)
	if !errors.Is(err, ErrAuth) {
		t.Errorf("wrong secret: %v, want ErrAuth", err)
	}
	assertPermanent(t, err)
	_, err2 := c.CreateServer(ctx, spec("n"))
	for _, e := range []error{err, err2} {
		if e == nil || strings.Contains(e.Error(), wrong) || strings.Contains(e.Error(), testSecret) {
			t.Errorf("error leaks a secret key (or is nil): %v", e)
		}
	}
}

func TestValidateCredentials(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, access, secret, project string
		ok                            bool
	}{
		{"valid", SandboxAccessKey, testSecret, SeedProjectID, true},
		{"short access key", "SCW123", testSecret, SeedProjectID, false},
		{"lower-case access key", "SCWabcdefghijklmnopq", testSecret, SeedProjectID, false},
		{"secret not a UUID", SandboxAccessKey, "hunter2", SeedProjectID, false},
		{"project not a UUID", SandboxAccessKey, testSecret, "my-project", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateCredentials(tt.access, tt.secret, tt.project)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && strings.Contains(err.Error(), tt.secret) {
				t.Errorf("error quotes the secret: %v", err)
			}
		})
	}
}

// TestAPIURLFromEnvironment cannot be parallel: it sets SCW_API_URL.
func TestAPIURLFromEnvironment(t *testing.T) {
	e := NewEmulator(EmulatorOptions{SecretKey: testSecret})
	t.Cleanup(e.Close)
	t.Setenv("SCW_API_URL", e.URL())
	c, err := New(Config{AccessKey: SandboxAccessKey, SecretKey: testSecret, ProjectID: SeedProjectID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListSSHKeyIDs(testCtx(t, 5*time.Second)); err != nil {
		t.Fatalf("ListSSHKeyIDs via SCW_API_URL: %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{"0", 0},
		{"-1", 0},
		{"soon", 0},
		{now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second},
		{now.Add(-5 * time.Second).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestClusterTags(t *testing.T) {
	t.Parallel()
	if got := ClusterTags("prod"); !slices.Equal(got, []string{"rawkode-cloud", "cluster=prod"}) {
		t.Errorf("ClusterTags = %v", got)
	}
}

// TestDeleteRefusedWhileOrdered: the API answers DELETE of a server that is
// still being ordered with 409 transient_state; the adapter waits that out
// (bounded by its context) instead of failing the undo.
func TestDeleteRefusedWhileOrdered(t *testing.T) {
	t.Parallel()
	d := fastDelays()
	d.Deliver = 150 * time.Millisecond
	ev := newEnv(t, EmulatorOptions{Delays: d})
	srv, err := ev.client.CreateServer(testCtx(t, 5*time.Second), spec("early"))
	if err != nil {
		t.Fatal(err)
	}

	// Straight through the wire: the refusal in the API's own shape.
	req, _ := http.NewRequest(http.MethodDelete, ev.emu.URL()+"/baremetal/v1/zones/"+DefaultZone+"/servers/"+srv.ID, nil)
	req.Header.Set("X-Auth-Token", testSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), `"type":"transient_state"`) || !strings.Contains(string(body), `"current_state":"ordered"`) {
		t.Fatalf("DELETE of an ordered server = %d %s, want 409 transient_state", resp.StatusCode, body)
	}

	if err := ev.client.DeleteServer(testCtx(t, 5*time.Second), srv.ID, wait.Options{Interval: time.Millisecond}); err != nil {
		t.Fatalf("DeleteServer of a server being delivered: %v", err)
	}
	if len(ev.retries.get()) == 0 {
		t.Error("the refusal was not retried")
	}
	if n := len(ev.emu.Servers()); n != 0 {
		t.Fatalf("%d servers left", n)
	}
}
