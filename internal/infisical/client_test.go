package infisical

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/testwait"
)

// Distinctive values: any of them showing up in an error is a leak.
const (
	testClientID     = "client-id-4f1e"
	testClientSecret = "cs-LEAKCHECK-9b7d2c1e"
	testProject      = "proj-7c3a"
	testEnv          = "prod"
)

func newEmulator(t *testing.T, opts EmulatorOptions) *Emulator {
	t.Helper()
	opts.Identities = append(opts.Identities, Identity{ClientID: testClientID, ClientSecret: testClientSecret})
	opts.Projects = append(opts.Projects, Project{ID: testProject})
	e := NewEmulator(opts)
	t.Cleanup(e.Close)
	return e
}

func testConfig(e *Emulator) Config {
	return Config{
		SiteURL: e.URL(), ClientID: testClientID, ClientSecret: testClientSecret,
		ProjectID: testProject, Environment: testEnv, SecretPath: "/",
		Retry: retry.Policy{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond},
	}
}

func connect(t *testing.T, cfg Config) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestConnect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		mutate     func(*Config)
		wantErr    error
		wantLogins int
	}{
		{name: "ok", wantLogins: 1},
		{name: "wrong secret", mutate: func(c *Config) { c.ClientSecret = "cs-WRONG-55aa77" }, wantErr: ErrUnauthorized, wantLogins: 1},
		{name: "unknown client", mutate: func(c *Config) { c.ClientID = "nobody" }, wantErr: ErrUnauthorized, wantLogins: 1},
		{name: "missing project", mutate: func(c *Config) { c.ProjectID = "" }, wantErr: ErrMissingConfig, wantLogins: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEmulator(t, EmulatorOptions{})
			cfg := testConfig(e)
			if tt.mutate != nil {
				tt.mutate(&cfg)
			}
			c, err := Connect(ctxTimeout(t, 5*time.Second), cfg)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Connect: %v", err)
				}
				c.Close()
			} else {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Connect error = %v, want %v", err, tt.wantErr)
				}
				if transient, _ := retry.Classify(err); transient {
					t.Errorf("error %v classified transient, want permanent", err)
				}
			}
			if got := e.Counters().Get("login"); got != tt.wantLogins {
				t.Errorf("login requests = %d, want %d", got, tt.wantLogins)
			}
		})
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{Secrets: []SeedSecret{
		{testProject, testEnv, "/", "DNS_ZONE", "example.com"},
		{testProject, testEnv, "/", "SCW_ACCESS_KEY", "SCWABCDEFGHIJKLMNOPQ"},
		{testProject, testEnv, "/talos", "talosconfig", "context: x"},
		{testProject, "dev", "/", "DNS_ZONE", "dev.example.com"},
		{"other-project", testEnv, "/", "DNS_ZONE", "other.example.com"},
	}})
	tests := []struct {
		name    string
		mutate  func(*Config)
		want    map[string]string
		wantErr error
	}{
		{name: "root", want: map[string]string{"DNS_ZONE": "example.com", "SCW_ACCESS_KEY": "SCWABCDEFGHIJKLMNOPQ"}},
		{name: "sub folder", mutate: func(c *Config) { c.SecretPath = "talos/" }, want: map[string]string{"talosconfig": "context: x"}},
		{name: "other environment", mutate: func(c *Config) { c.Environment = "dev" }, want: map[string]string{"DNS_ZONE": "dev.example.com"}},
		{name: "missing folder lists empty", mutate: func(c *Config) { c.SecretPath = "/nope" }, want: map[string]string{}},
		{name: "missing project", mutate: func(c *Config) { c.ProjectID = "proj-missing" }, wantErr: ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(e)
			if tt.mutate != nil {
				tt.mutate(&cfg)
			}
			c := connect(t, cfg)
			got, err := c.List(ctxTimeout(t, 5*time.Second))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("List error = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "Project with ID 'proj-missing' not found") {
					t.Errorf("error %q does not carry the server's message", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			assertMap(t, got, tt.want)
		})
	}
}

func assertMap(t *testing.T, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d secrets %v, want %d", len(got), keys(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("secret %s: got %q, want %q", k, got[k], v)
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestWrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		seed      []SeedSecret
		path      string
		write     map[string]string
		wantCalls map[string]int
	}{
		{
			name:      "new secrets in a new nested folder",
			path:      "/clusters/lab",
			write:     map[string]string{"kubeconfig": "apiVersion: v1", "talosconfig": "context: lab"},
			wantCalls: map[string]int{"create-secret": 3, "create-folder": 1, "update-secret": 0},
		},
		{
			name:      "overwrite changed, skip unchanged",
			seed:      []SeedSecret{{testProject, testEnv, "/talos", "a", "old"}, {testProject, testEnv, "/talos", "b", "same"}},
			path:      "/talos",
			write:     map[string]string{"a": "new", "b": "same"},
			wantCalls: map[string]int{"create-secret": 0, "update-secret": 1},
		},
		{
			name:      "empty value replaces old one",
			seed:      []SeedSecret{{testProject, testEnv, "/", "a", "old"}},
			write:     map[string]string{"a": ""},
			wantCalls: map[string]int{"delete-secret": 1, "create-secret": 1},
		},
		{
			name:      "default path is the configured one",
			write:     map[string]string{"x": "1"},
			wantCalls: map[string]int{"create-secret": 1, "create-folder": 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEmulator(t, EmulatorOptions{Secrets: tt.seed})
			c := connect(t, testConfig(e))
			if err := c.Write(ctxTimeout(t, 5*time.Second), tt.path, tt.write); err != nil {
				t.Fatalf("Write: %v", err)
			}
			for name, want := range tt.write {
				got, ok := e.Value(testProject, testEnv, tt.path, name)
				if !ok || got != want {
					t.Errorf("stored %s = %q (present %v), want %q", name, got, ok, want)
				}
			}
			for op, want := range tt.wantCalls {
				// "new secrets" tries create once before the folder exists.
				if got := e.Counters().Get(op); got != want {
					t.Errorf("%s requests = %d, want %d", op, got, want)
				}
			}
		})
	}
}

func TestWriteThenListAndGet(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{})
	cfg := testConfig(e)
	cfg.SecretPath = "/rawkode-cloud"
	c := connect(t, cfg)
	ctx := ctxTimeout(t, 5*time.Second)
	want := map[string]string{"bundle": "certs:\n  etcd: {}\n", "ref": "${NOT_EXPANDED}"}
	if err := c.Write(ctx, "", want); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got, err := c.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	assertMap(t, got, want)
	v, err := c.Get(ctx, "/rawkode-cloud", "bundle")
	if err != nil || v != want["bundle"] {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if _, err := c.Get(ctx, "/rawkode-cloud", "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing error = %v, want ErrNotFound", err)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{Secrets: []SeedSecret{
		{testProject, testEnv, "/talos", "a", "1"},
		{testProject, testEnv, "/talos", "b", "2"},
		{testProject, testEnv, "/talos", "keep", "3"},
	}})
	c := connect(t, testConfig(e))
	ctx := ctxTimeout(t, 5*time.Second)
	for i, names := range [][]string{{"a", "b"}, {"a", "b"}, {"never-existed"}} {
		if err := c.Delete(ctx, "/talos", names); err != nil {
			t.Fatalf("Delete #%d %v: %v", i+1, names, err)
		}
	}
	got := e.Secrets()
	if len(got) != 1 || got[0] != (Secret{testProject, testEnv, "/talos", "keep"}) {
		t.Fatalf("left behind %+v, want only keep", got)
	}
	if err := c.Delete(ctx, "/no-such-folder", []string{"a"}); err != nil {
		t.Fatalf("Delete in missing folder: %v", err)
	}
}

func TestMissingProjectOnWrite(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{})
	cfg := testConfig(e)
	cfg.ProjectID = "proj-missing"
	c := connect(t, cfg)
	err := c.Write(ctxTimeout(t, 5*time.Second), "/x", map[string]string{"a": "b"})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Write error = %v, want ErrNotFound", err)
	}
}

// op runs one client operation against e; connect-time faults are exercised
// through Connect itself.
type op func(ctx context.Context, t *testing.T, cfg Config) error

var ops = map[string]op{
	FaultLogin: func(ctx context.Context, t *testing.T, cfg Config) error {
		c, err := Connect(ctx, cfg)
		if err == nil {
			c.Close()
		}
		return err
	},
	FaultListSecrets: func(ctx context.Context, t *testing.T, cfg Config) error {
		_, err := connect(t, cfg).List(ctx)
		return err
	},
	FaultWriteSecrets: func(ctx context.Context, t *testing.T, cfg Config) error {
		return connect(t, cfg).Write(ctx, "/", map[string]string{"new": "value-1"})
	},
	FaultDeleteSecrets: func(ctx context.Context, t *testing.T, cfg Config) error {
		return connect(t, cfg).Delete(ctx, "/", []string{"seeded"})
	},
}

func TestFaults(t *testing.T) {
	t.Parallel()
	kinds := []struct {
		name        string
		fault       emulator.Fault
		ctxTimeout  time.Duration
		attemptTO   time.Duration
		wantErr     bool
		wantRetries int
		minNext     time.Duration // smallest announced wait before a retry
		wantCtxErr  bool
	}{
		{name: "error", fault: emulator.Fault{Kind: emulator.Error}, wantErr: true},
		{name: "unavailable-twice", fault: emulator.Fault{Kind: emulator.Unavailable, Times: 2}, wantRetries: 2},
		{name: "unavailable-until-deadline", fault: emulator.Fault{Kind: emulator.Unavailable}, ctxTimeout: 300 * time.Millisecond, wantErr: true},
		{name: "ratelimit-once", fault: emulator.Fault{Kind: emulator.RateLimit, Times: 1}, wantRetries: 1, minNext: rateLimitFloor},
		{name: "hang-until-deadline", fault: emulator.Fault{Kind: emulator.Hang}, ctxTimeout: 300 * time.Millisecond, wantErr: true, wantCtxErr: true},
		{name: "hang-once-then-retry", fault: emulator.Fault{Kind: emulator.Hang, Times: 1}, attemptTO: 100 * time.Millisecond, wantRetries: 1},
	}
	for point, run := range ops {
		for _, k := range kinds {
			t.Run(point+"/"+k.name, func(t *testing.T) {
				t.Parallel()
				e := newEmulator(t, EmulatorOptions{Secrets: []SeedSecret{{testProject, testEnv, "/", "seeded", "x"}}})
				var mu sync.Mutex
				var attempts []retry.Attempt
				cfg := testConfig(e)
				cfg.AttemptTimeout = k.attemptTO
				cfg.Retry.OnRetry = func(a retry.Attempt) {
					mu.Lock()
					defer mu.Unlock()
					attempts = append(attempts, a)
				}
				timeout := k.ctxTimeout
				if timeout == 0 {
					timeout = 5 * time.Second
				}
				e.Faults().Set(point, k.fault)
				ctx := ctxTimeout(t, timeout)
				start := time.Now()
				err := run(ctx, t, cfg)
				elapsed := time.Since(start)

				if k.wantErr != (err != nil) {
					t.Fatalf("error = %v, want error: %v", err, k.wantErr)
				}
				if k.wantCtxErr && !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("error = %v, want the deadline", err)
				}
				if k.wantCtxErr && elapsed > timeout+time.Second {
					t.Errorf("call took %s, deadline was %s", elapsed, timeout)
				}
				if k.fault.Kind == emulator.Error {
					if transient, _ := retry.Classify(err); transient {
						t.Errorf("error fault classified transient: %v", err)
					}
					if e.Faults().Fired(point) != 1 {
						t.Errorf("error fault fired %d times, want 1 (no retry)", e.Faults().Fired(point))
					}
				}
				mu.Lock()
				defer mu.Unlock()
				if !k.wantErr && len(attempts) != k.wantRetries {
					t.Errorf("retries = %d, want %d", len(attempts), k.wantRetries)
				}
				for _, a := range attempts {
					if a.Next < k.minNext {
						t.Errorf("retry %d waited %s, want at least %s", a.N, a.Next, k.minNext)
					}
				}
			})
		}
	}
}

// TestNoSecretsInErrors drives every failure path with distinctive values
// and checks that no credential, token or secret value reaches an error.
func TestNoSecretsInErrors(t *testing.T) {
	t.Parallel()
	const value = "sv-LEAKCHECK-deadbeef"
	secrets := []string{testClientSecret, value, tokenPrefix, "cs-WRONG-LEAK-1234"}
	type scenario func(t *testing.T, e *Emulator) error
	scenarios := map[string]scenario{
		"wrong credentials": func(t *testing.T, e *Emulator) error {
			cfg := testConfig(e)
			cfg.ClientSecret = "cs-WRONG-LEAK-1234"
			_, err := Connect(ctxTimeout(t, 5*time.Second), cfg)
			return err
		},
		"write fault": func(t *testing.T, e *Emulator) error {
			c := connect(t, testConfig(e))
			e.Faults().Set(FaultWriteSecrets, emulator.Fault{Kind: emulator.Error})
			return c.Write(ctxTimeout(t, 5*time.Second), "/", map[string]string{"k": value})
		},
		"write hang": func(t *testing.T, e *Emulator) error {
			c := connect(t, testConfig(e))
			e.Faults().Set(FaultWriteSecrets, emulator.Fault{Kind: emulator.Hang})
			return c.Write(ctxTimeout(t, 200*time.Millisecond), "/", map[string]string{"k": value})
		},
		"write missing project": func(t *testing.T, e *Emulator) error {
			cfg := testConfig(e)
			cfg.ProjectID = "nope"
			return connect(t, cfg).Write(ctxTimeout(t, 5*time.Second), "/", map[string]string{"k": value})
		},
		"server gone": func(t *testing.T, e *Emulator) error {
			c := connect(t, testConfig(e))
			e.Close()
			return c.Write(ctxTimeout(t, 300*time.Millisecond), "/", map[string]string{"k": value})
		},
	}
	for name, run := range scenarios {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := run(t, newEmulator(t, EmulatorOptions{}))
			if err == nil {
				t.Fatal("want an error")
			}
			for _, s := range secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error leaks %q: %v", s, err)
				}
			}
		})
	}
}

// TestScrubsEchoingServer points the client at a server that quotes each
// request back in its error message, the worst case for leaks.
func TestScrubsEchoingServer(t *testing.T) {
	t.Parallel()
	const value = "sv-ECHO-LEAK-0123abcd"
	const token = "at-ECHO-LEAK-token-77"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.URL.Path == "/api/v1/auth/universal-auth/login" && strings.Contains(string(body), "ok-secret"):
			emulator.WriteJSON(w, 200, map[string]any{"accessToken": token, "expiresIn": 3600, "accessTokenMaxTTL": 7200, "tokenType": "Bearer"})
		case r.Method == http.MethodGet:
			emulator.WriteJSON(w, 200, map[string]any{"secrets": []any{}, "imports": []any{}})
		default:
			emulator.WriteJSON(w, 400, map[string]any{"statusCode": 400, "error": "BadRequest",
				"message": "echo " + string(body) + " auth " + r.Header.Get("Authorization")})
		}
	}))
	t.Cleanup(srv.Close)
	cfg := Config{SiteURL: srv.URL, ClientID: "id", ClientSecret: "cs-ECHO-LEAK-bad", ProjectID: "p", Environment: "e"}
	_, err := Connect(ctxTimeout(t, 5*time.Second), cfg)
	if err == nil || strings.Contains(err.Error(), cfg.ClientSecret) {
		t.Fatalf("login error leaks or is missing: %v", err)
	}
	cfg.ClientSecret = "ok-secret"
	c := connect(t, cfg)
	err = c.Write(ctxTimeout(t, 5*time.Second), "/", map[string]string{"k": value})
	if err == nil {
		t.Fatal("want an error")
	}
	for _, s := range []string{value, token, "ok-secret"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error leaks %q: %v", s, err)
		}
	}
	if !strings.Contains(err.Error(), "[REDACTED]") {
		t.Errorf("error %v should show where text was scrubbed", err)
	}
}

func TestTokenRenewal(t *testing.T) {
	t.Parallel()
	// The SDK renews 5s before expiry, so a 6s token is renewed after ~1s.
	e := newEmulator(t, EmulatorOptions{TokenTTL: 6 * time.Second})
	c := connect(t, testConfig(e))
	testwait.For(t, 5*time.Second, "token renewal", func() bool { return e.Counters().Get("renew") >= 1 })
	if _, err := c.List(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("List after renewal: %v", err)
	}
	if got := e.Counters().Get("login"); got != 1 {
		t.Errorf("logins = %d, want 1 (renewal, not re-login)", got)
	}
}
