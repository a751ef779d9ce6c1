package teleport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/client/proto"
	"github.com/gravitational/teleport/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/testwait"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

const testCluster = "lab-1"

func newEmulator(t *testing.T, opts EmulatorOptions) *Emulator {
	t.Helper()
	e, err := NewEmulator(opts)
	if err != nil {
		t.Fatalf("NewEmulator: %v", err)
	}
	t.Cleanup(e.Close)
	return e
}

// fastRetry keeps retries in milliseconds and counts them.
func fastRetry(n *atomic.Int32) retry.Policy {
	return retry.Policy{Initial: time.Millisecond, Max: 5 * time.Millisecond, OnRetry: func(retry.Attempt) {
		if n != nil {
			n.Add(1)
		}
	}}
}

func connect(t *testing.T, e *Emulator, cfg Config) *Client {
	t.Helper()
	if cfg.IdentityFile == "" && len(cfg.IdentityContent) == 0 {
		id, err := e.IdentityFile()
		if err != nil {
			t.Fatal(err)
		}
		cfg.IdentityContent = id
	}
	cfg.Proxy = e.Addr()
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.Retry.Initial == 0 {
		cfg.Retry = fastRetry(nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestConnectWithIssuedIdentity(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{})
	id, err := e.IdentityFile()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "identity")
	if err := os.WriteFile(path, id, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"file path", Config{IdentityFile: path}},
		{"content", Config{IdentityContent: id}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := connect(t, e, tc.cfg)
			if err := c.Check(testCtx(t, 10*time.Second)); err != nil {
				t.Fatalf("Check: %v", err)
			}
		})
	}
}

func TestConnectRefusesForeignIdentity(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{})
	other := newEmulator(t, EmulatorOptions{ClusterName: "other.example"})
	foreign, err := other.IdentityFile()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Connect(testCtx(t, 10*time.Second), Config{
		Proxy: e.Addr(), IdentityContent: foreign, DialTimeout: 300 * time.Millisecond,
	})
	if err == nil {
		_ = c.Close()
		t.Fatal("Connect with an identity from another CA succeeded")
	}
	if got := e.Counters().Total(); got != 0 {
		t.Fatalf("emulator served %d requests to a foreign identity", got)
	}
}

func TestConnectBadIdentityKeepsContentOutOfErrors(t *testing.T) {
	t.Parallel()
	const secret = "SUPERSECRETKEYMATERIAL42"
	content := "-----BEGIN PRIVATE KEY-----\n" + secret + "\n-----END PRIVATE KEY-----\n"
	_, err := Connect(testCtx(t, 5*time.Second), Config{
		Proxy: "127.0.0.1:1", IdentityContent: []byte(content), DialTimeout: 200 * time.Millisecond,
	})
	if err == nil {
		t.Fatal("Connect with a broken identity succeeded")
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error shows identity content: %v", err)
	}
}

func TestTokenLifecycle(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{})
	c := connect(t, e, Config{})
	ctx := testCtx(t, 10*time.Second)

	tok, err := c.CreateKubeToken(ctx, testCluster, 0)
	if err != nil {
		t.Fatalf("CreateKubeToken: %v", err)
	}
	if len(tok.Name) < 32 {
		t.Fatalf("token name has %d hex chars, want ≥32 (128 bits)", len(tok.Name))
	}
	if d := time.Until(tok.Expires); d < 29*time.Minute || d > 31*time.Minute {
		t.Fatalf("token expires in %v, want about %v", d, DefaultTokenTTL)
	}
	inv := e.Tokens()
	if len(inv) != 1 || inv[0].Name != tok.Name || inv[0].Labels[LabelCluster] != testCluster ||
		len(inv[0].Roles) != 1 || inv[0].Roles[0] != string(types.RoleKube) {
		t.Fatalf("emulator tokens = %+v", inv)
	}

	for _, tc := range []struct {
		cluster string
		want    int
	}{{testCluster, 1}, {"someone-else", 0}} {
		got, err := c.ListKubeTokens(ctx, tc.cluster)
		if err != nil {
			t.Fatalf("ListKubeTokens(%s): %v", tc.cluster, err)
		}
		if len(got) != tc.want || (tc.want == 1 && got[0].Name != tok.Name) {
			t.Fatalf("ListKubeTokens(%s) = %v, want %d", tc.cluster, got, tc.want)
		}
	}

	for i := range 2 { // the second delete finds nothing: still no error
		if err := c.DeleteToken(ctx, tok.Name); err != nil {
			t.Fatalf("DeleteToken #%d: %v", i+1, err)
		}
	}
	if inv := e.Tokens(); len(inv) != 0 {
		t.Fatalf("tokens left: %+v", inv)
	}
	if got := e.Counters().Get(OpDeleteToken); got != 2 {
		t.Fatalf("DeleteToken calls = %d, want 2", got)
	}
}

// clock is a settable emulator clock.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

func TestJoin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, c *Client, clk *clock) string // returns the token to join with
		wantErr bool
	}{
		{"valid token", func(t *testing.T, c *Client, _ *clock) string {
			return mustToken(t, c, time.Minute)
		}, false},
		{"expired token", func(t *testing.T, c *Client, clk *clock) string {
			name := mustToken(t, c, time.Minute)
			clk.Advance(2 * time.Minute)
			return name
		}, true},
		{"unknown token", func(t *testing.T, c *Client, _ *clock) string {
			mustToken(t, c, time.Minute)
			return "0123456789abcdef0123456789abcdef"
		}, true},
		{"wrong role", func(t *testing.T, c *Client, _ *clock) string {
			const name = "node-token-0123456789abcdef"
			pt, err := types.NewProvisionToken(name, types.SystemRoles{types.RoleNode}, time.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.api.CreateToken(testCtx(t, 5*time.Second), pt); err != nil {
				t.Fatal(err)
			}
			return name
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := &clock{}
			e := newEmulator(t, EmulatorOptions{Now: clk.Now})
			c := connect(t, e, Config{})
			token := tc.setup(t, c, clk)
			err := e.Join(token, testCluster)
			if tc.wantErr {
				if !errors.Is(err, ErrJoinRefused) {
					t.Fatalf("Join error = %v, want ErrJoinRefused", err)
				}
				if strings.Contains(err.Error(), token) {
					t.Fatalf("Join error shows the token: %v", err)
				}
				if got := e.KubeServers(); len(got) != 0 {
					t.Fatalf("kube servers after refused join: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Join: %v", err)
			}
			// Tokens with a TTL are multi-use until they expire.
			if err := e.Join(token, "lab-2"); err != nil {
				t.Fatalf("second Join: %v", err)
			}
			if got := e.KubeServers(); len(got) != 2 || got[0] != testCluster {
				t.Fatalf("kube servers = %v", got)
			}
		})
	}
}

func mustToken(t *testing.T, c *Client, ttl time.Duration) string {
	t.Helper()
	tok, err := c.CreateKubeToken(testCtx(t, 5*time.Second), testCluster, ttl)
	if err != nil {
		t.Fatalf("CreateKubeToken: %v", err)
	}
	return tok.Name
}

// states records OnState reports.
type states struct {
	mu  sync.Mutex
	got []string
}

func (s *states) add(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, v)
}

func (s *states) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func TestWaitKubeServer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		joinDelay  time.Duration
		joinBefore bool
		noWatch    bool
		wantStates []string
		wantLists  int // -1: more than one
	}{
		{"join after the watch started", 0, false, false, []string{StateNoKubeServer, StateRegistered}, 1},
		{"join with agent heartbeat delay", 20 * time.Millisecond, false, false, []string{StateNoKubeServer, StateRegistered}, 1},
		{"already registered", 0, true, false, []string{StateRegistered}, 1},
		{"polls when the server cannot watch", 0, false, true, []string{StateNoKubeServer, StateRegistered}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEmulator(t, EmulatorOptions{JoinDelay: tc.joinDelay, NoWatch: tc.noWatch})
			c := connect(t, e, Config{})
			token := mustToken(t, c, time.Minute)
			if tc.joinBefore {
				if err := e.Join(token, testCluster); err != nil {
					t.Fatal(err)
				}
				testwait.For(t, 5*time.Second, "the agent's kube server to register", func() bool { return len(e.KubeServers()) == 1 })
			}
			var st states
			opts := wait.Options{Interval: 5 * time.Millisecond, OnState: func(s string) {
				st.add(s)
				// The agent joins only once the client has watched and
				// listed, so the registration must come through the watch.
				if s == StateNoKubeServer {
					if err := e.Join(token, testCluster); err != nil {
						t.Errorf("Join: %v", err)
					}
				}
			}}
			if err := c.WaitKubeServer(testCtx(t, 10*time.Second), testCluster, opts); err != nil {
				t.Fatalf("WaitKubeServer: %v", err)
			}
			if got := st.list(); fmt.Sprint(got) != fmt.Sprint(tc.wantStates) {
				t.Fatalf("states = %q, want %q", got, tc.wantStates)
			}
			switch n := e.Counters().Get(OpListResources); {
			case tc.wantLists == -1 && n < 2:
				t.Fatalf("ListResources calls = %d, want polling", n)
			case tc.wantLists > 0 && n != tc.wantLists:
				t.Fatalf("ListResources calls = %d, want %d (the watch should do the waiting)", n, tc.wantLists)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	type env struct {
		e       *Emulator
		c       *Client
		token   string // an existing Kube token
		retries *atomic.Int32
	}
	check := func(ctx context.Context, v env) error { return v.c.Check(ctx) }
	create := func(ctx context.Context, v env) error {
		_, err := v.c.CreateKubeToken(ctx, testCluster, 0)
		return err
	}
	del := func(ctx context.Context, v env) error { return v.c.DeleteToken(ctx, v.token) }
	waitKube := func(ctx context.Context, v env) error {
		// WaitKubeServer reports re-watches through its wait.Options.
		return v.c.WaitKubeServer(ctx, testCluster, wait.Options{
			Interval: 5 * time.Millisecond,
			OnRetry:  func(retry.Attempt) { v.retries.Add(1) },
		})
	}
	waitAfterJoin := func(ctx context.Context, v env) error {
		if err := v.e.Join(v.token, testCluster); err != nil {
			return err
		}
		return waitKube(ctx, v)
	}
	for _, tc := range []struct {
		point, kind string
		times       int
		op          func(context.Context, env) error
		timeout     time.Duration
		wantErr     error // nil: success; errAny: some error
		wantRetries int32
	}{
		{FaultConnect, "unavailable", 2, check, 0, nil, 2},
		{FaultConnect, "ratelimit", 1, check, 0, nil, 1},
		{FaultConnect, "error", 0, check, 0, errAny, 0},
		{FaultConnect, "hang", 0, check, 200 * time.Millisecond, errAny, 0},
		{FaultCreateToken, "unavailable", 1, create, 0, nil, 1},
		{FaultCreateToken, "ratelimit", 1, create, 0, nil, 1},
		{FaultCreateToken, "error", 0, create, 0, errAny, 0},
		{FaultCreateToken, "hang", 0, create, 200 * time.Millisecond, errAny, 0},
		{FaultDeleteToken, "unavailable", 1, del, 0, nil, 1},
		{FaultDeleteToken, "ratelimit", 1, del, 0, nil, 1},
		{FaultDeleteToken, "error", 0, del, 0, errAny, 0},
		{FaultDeleteToken, "hang", 0, del, 200 * time.Millisecond, errAny, 0},
		{FaultListKube, "unavailable", 1, waitAfterJoin, 0, nil, 1},
		{FaultListKube, "ratelimit", 2, waitAfterJoin, 0, nil, 2},
		{FaultListKube, "error", 0, waitAfterJoin, 0, errAny, 0},
		{FaultListKube, "hang", 0, waitAfterJoin, 200 * time.Millisecond, wait.ErrTimeout, 0},
		{FaultAgent, "never", 0, waitAfterJoin, 200 * time.Millisecond, wait.ErrTimeout, 0},
		{FaultAgent, "error", 0, waitAfterJoin, 0, ErrJoinRefused, 0},
	} {
		name := fmt.Sprintf("%s=%s@%d", tc.point, tc.kind, tc.times)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEmulator(t, EmulatorOptions{})
			var retries atomic.Int32
			c := connect(t, e, Config{Retry: fastRetry(&retries)})
			v := env{e: e, c: c, token: mustToken(t, c, time.Minute), retries: &retries}
			e.Faults().Set(tc.point, emulator.Fault{Kind: emulator.Kind(tc.kind), Times: tc.times})
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			ctx := testCtx(t, timeout)
			err := tc.op(ctx, v)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("got %v, want success", err)
			case tc.wantErr == errAny && err == nil:
				t.Fatal("got success, want an error")
			case tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			if got := retries.Load(); got != tc.wantRetries {
				t.Fatalf("retries = %d, want %d (err %v)", got, tc.wantRetries, err)
			}
			if err != nil && strings.Contains(err.Error(), v.token) {
				t.Fatalf("error shows the token: %v", err)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestTokenNameNeverInErrors(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{})
	// A server that echoes the token name in its errors, as some backends do.
	var seen atomic.Value
	echo := grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any,
		cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		var name string
		switch r := req.(type) {
		case *proto.CreateTokenV2Request:
			name = r.GetV2().GetName()
		case *types.ResourceRequest:
			name = r.Name
		default:
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		seen.Store(name)
		return status.Errorf(codes.Unavailable, "backend: key /tokens/%s is busy", name)
	})
	var retryErrs []string
	var mu sync.Mutex
	policy := retry.Policy{Initial: time.Millisecond, Max: 2 * time.Millisecond, MaxAttempts: 3,
		OnRetry: func(a retry.Attempt) {
			mu.Lock()
			defer mu.Unlock()
			retryErrs = append(retryErrs, a.Err.Error())
		}}
	c := connect(t, e, Config{DialOpts: []grpc.DialOption{echo}, Retry: policy})
	ctx := testCtx(t, 10*time.Second)

	_, createErr := c.CreateKubeToken(ctx, testCluster, 0)
	created, _ := seen.Load().(string)
	const known = "feedfacefeedfacefeedfacefeedface"
	deleteErr := c.DeleteToken(ctx, known)
	for _, tc := range []struct {
		what   string
		err    error
		secret string
	}{
		{"create", createErr, created},
		{"delete", deleteErr, known},
	} {
		if tc.err == nil || tc.secret == "" {
			t.Fatalf("%s: err %v, secret %q: the echoing interceptor did not run", tc.what, tc.err, tc.secret)
		}
		if strings.Contains(tc.err.Error(), tc.secret) {
			t.Errorf("%s error shows the token: %v", tc.what, tc.err)
		}
		if !strings.Contains(tc.err.Error(), Redact(tc.secret)) {
			t.Errorf("%s error lacks the redacted name: %v", tc.what, tc.err)
		}
		mu.Lock()
		for _, r := range retryErrs {
			if strings.Contains(r, tc.secret) {
				t.Errorf("retry report shows the token: %s", r)
			}
		}
		mu.Unlock()
	}
}

func TestTokenPrintingRedacts(t *testing.T) {
	t.Parallel()
	tok := Token{Name: "cafebabecafebabecafebabecafebabe", Cluster: testCluster, Expires: time.Now()}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("issued", "token", tok)
	for _, tc := range []struct{ name, out string }{
		{"%v", fmt.Sprintf("%v", tok)},
		{"%+v", fmt.Sprintf("%+v", tok)},
		{"%#v", fmt.Sprintf("%#v", tok)},
		{"%s", fmt.Sprintf("%s", tok)},
		{"slog", logged.String()},
		{"Redact", Redact(tok.Name)},
	} {
		if strings.Contains(tc.out, tok.Name) {
			t.Errorf("%s shows the token: %s", tc.name, tc.out)
		}
		if !strings.Contains(tc.out, tok.Name[:4]) {
			t.Errorf("%s lacks the short prefix: %s", tc.name, tc.out)
		}
	}
}

func TestConfigPrintingRedacts(t *testing.T) {
	t.Parallel()
	const secret = "-----BEGIN PRIVATE KEY-----\nIDENTITYSECRET99\n"
	cfg := Config{Proxy: "teleport.example.com:443", IdentityContent: []byte(secret)}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("connecting", "teleport", cfg)
	for _, out := range []string{
		fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), logged.String(),
	} {
		if strings.Contains(out, "IDENTITYSECRET99") {
			t.Errorf("identity content printed: %s", out)
		}
		if !strings.Contains(out, "teleport.example.com:443") {
			t.Errorf("proxy missing: %s", out)
		}
	}
}

// TokenExpiry tells what Teleport holds: the expiry by its clock, and
// NotFound once its clock passed it, whatever this machine believes.
func TestTokenExpiryFollowsTeleportsClock(t *testing.T) {
	t.Parallel()
	clk := &clock{}
	e := newEmulator(t, EmulatorOptions{Now: clk.Now})
	c := connect(t, e, Config{})
	ctx := testCtx(t, 10*time.Second)
	tok, err := c.CreateKubeToken(ctx, testCluster, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.TokenExpiry(ctx, tok.Name)
	if err != nil || !got.Equal(tok.Expires) {
		t.Fatalf("TokenExpiry = %v, %v; want %v", got, err, tok.Expires)
	}
	clk.Advance(2 * time.Minute) // Teleport's clock only
	if _, err := c.TokenExpiry(ctx, tok.Name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("TokenExpiry after its TTL = %v, want ErrNotFound", err)
	}
	if err := e.Join(tok.Name, testCluster); !errors.Is(err, ErrJoinRefused) {
		t.Fatalf("Join with the expired token = %v, want refused", err)
	}
}

// teleport.token=expire hits the first token only (the first N with @N):
// it is gone before its agent starts; the token minted to replace it lives
// its TTL.
func TestExpireFaultHitsTheFirstToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fault emulator.Fault
		hit   []bool
	}{
		{emulator.Fault{Kind: emulator.Expire}, []bool{true, false, false}},
		{emulator.Fault{Kind: emulator.Expire, Times: 2}, []bool{true, true, false}},
	} {
		t.Run(tc.fault.String(), func(t *testing.T) {
			t.Parallel()
			faults := emulator.NewFaults()
			faults.Set(FaultToken, tc.fault)
			e := newEmulator(t, EmulatorOptions{Faults: faults, EarlyExpiry: 50 * time.Millisecond})
			c := connect(t, e, Config{})
			ctx := testCtx(t, 10*time.Second)
			var names []string
			for range tc.hit {
				names = append(names, mustToken(t, c, time.Hour))
			}
			for i, name := range names {
				exp, err := c.TokenExpiry(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				if early := time.Until(exp) < time.Minute; early != tc.hit[i] {
					t.Fatalf("token %d expires in %v; hit by the fault = %v, want %v", i+1, time.Until(exp), early, tc.hit[i])
				}
			}
			// Once its shortened life is over, the hit token is gone and refused.
			err := wait.Until(ctx, "first token gone", wait.Options{Interval: 10 * time.Millisecond}, func(ctx context.Context) (bool, string, error) {
				_, err := c.TokenExpiry(ctx, names[0])
				return errors.Is(err, ErrNotFound), "", nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Join(names[0], testCluster); !errors.Is(err, ErrJoinRefused) {
				t.Fatalf("Join with the expired token = %v, want refused", err)
			}
			if err := e.Join(names[len(names)-1], testCluster); err != nil {
				t.Fatalf("Join with the renewed token: %v", err)
			}
		})
	}
}

// A create that never got its answer may have created the token: the
// caller gets its name with the error, to push its removal all the same.
func TestCreateKubeTokenNamesTheTokenItMayHaveCreated(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, EmulatorOptions{})
	e.Faults().Set(FaultCreateToken, emulator.Fault{Kind: emulator.Unavailable})
	c := connect(t, e, Config{})
	tok, err := c.CreateKubeToken(testCtx(t, 2*time.Second), testCluster, 0)
	if err == nil {
		t.Fatal("CreateKubeToken succeeded against an unavailable Teleport")
	}
	if len(tok.Name) < 32 || tok.Cluster != testCluster {
		t.Fatalf("no token named with the error: %+v", tok)
	}
	if strings.Contains(err.Error(), tok.Name) {
		t.Fatalf("the error shows the token's name: %v", err)
	}
}
