// Package teleport registers clusters with Teleport through the official
// API client: it checks the operator's credentials, issues the kube agent's
// join token, waits for the agent to register and removes leftover tokens.
// It also holds Emulator, an in-process Teleport auth service over real
// gRPC and mTLS used by tests and `provision --sandbox`.
package teleport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gravitational/teleport/api/breaker"
	"github.com/gravitational/teleport/api/client"
	"github.com/gravitational/trace"
	"google.golang.org/grpc"

	"github.com/rawkode/rawkode-cloud/internal/retry"
)

// ErrNotFound is returned (wrapped) when a token or resource does not exist,
// so undo steps can treat "already gone" as done.
var ErrNotFound = errors.New("not found")

// Config says how to reach Teleport and as whom.
type Config struct {
	// Proxy is the proxy or auth address, host:port (e.g. teleport.example.com:443).
	Proxy string
	// IdentityFile is the path of an identity file (`tctl auth sign --format=file`).
	IdentityFile string
	// IdentityContent is an identity file's content; wins over IdentityFile.
	// With neither, the active `tsh` profile is used.
	IdentityContent []byte
	// ProfileDir is where tsh keeps its profiles; default ~/.tsh.
	ProfileDir string
	// DialTimeout bounds connecting; default 30s (the client's default).
	DialTimeout time.Duration
	// AttemptTimeout bounds one call (one try of Ping, CreateToken, …), so
	// a hung auth server costs a retry instead of the caller's whole
	// budget; default 30s.
	AttemptTimeout time.Duration
	// DialOpts are extra gRPC dial options (test seams, interceptors).
	DialOpts []grpc.DialOption
	// Retry is the policy for single calls; its OnRetry reports each retry.
	// The caller's context bounds it.
	Retry retry.Policy
}

// String describes the config without the identity's content (it holds a
// private key), so printing a Config is safe.
func (c Config) String() string {
	id := "tsh profile"
	switch {
	case len(c.IdentityContent) > 0:
		id = fmt.Sprintf("identity content (%d bytes, redacted)", len(c.IdentityContent))
	case c.IdentityFile != "":
		id = "identity file " + c.IdentityFile
	}
	return fmt.Sprintf("teleport proxy %s with %s", proxyName(c.Proxy), id)
}

// GoString keeps %#v from printing the identity's content.
func (c Config) GoString() string { return "teleport.Config{" + c.String() + "}" }

// LogValue keeps slog from printing the identity's content.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Client is a connected Teleport API client.
type Client struct {
	mu             sync.Mutex
	serverVersion  string
	api            *client.Client
	retry          retry.Policy
	attemptTimeout time.Duration
	identity       string // who we are, for messages
	user           string // the Teleport user of the identity, "" when unknown
}

// Connect dials Teleport with the configured identity. It does not call
// anything yet: use Check to verify reachability and credentials.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	var creds client.Credentials
	switch {
	case len(cfg.IdentityContent) > 0:
		creds = client.LoadIdentityFileFromString(string(cfg.IdentityContent))
	case cfg.IdentityFile != "":
		creds = client.LoadIdentityFile(cfg.IdentityFile)
	default:
		creds = client.LoadProfile(cfg.ProfileDir, "")
	}
	apiCfg := client.Config{
		Credentials: []client.Credentials{creds},
		DialTimeout: cfg.DialTimeout,
		DialOpts:    cfg.DialOpts,
		// Our retry policy is the one place that decides about retrying.
		// The SDK's breaker would turn a burst of transient errors into
		// "breaker is tripped" for a minute, hiding the real error and
		// failing even the undo calls that follow.
		CircuitBreakerConfig: breaker.NoopBreakerConfig(),
	}
	if cfg.Proxy != "" {
		apiCfg.Addrs = []string{cfg.Proxy}
	}
	api, err := client.New(ctx, apiCfg)
	if err != nil {
		return nil, fmt.Errorf("connect to Teleport at %s: %w", proxyName(cfg.Proxy), classify(err))
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 30 * time.Second
	}
	user := credentialsUser(creds)
	return &Client{api: api, retry: cfg.Retry, attemptTimeout: cfg.AttemptTimeout, identity: identityOf(cfg, user), user: user}, nil
}

func proxyName(p string) string {
	if p == "" {
		return "the tsh profile's proxy"
	}
	return p
}

// Close releases the connection.
func (c *Client) Close() error {
	return c.api.Close()
}

// Check verifies that Teleport answers and accepts the credentials, so
// phase 0 fails before anything is bought.
func (c *Client) Check(ctx context.Context) error {
	err := c.retry.Do(ctx, func(ctx context.Context) error {
		return c.attempt(ctx, func(ctx context.Context) error {
			pong, err := c.api.Ping(ctx)
			if err == nil {
				c.mu.Lock()
				c.serverVersion = pong.ServerVersion
				c.mu.Unlock()
			}
			return classify(err)
		})
	})
	if err != nil {
		return fmt.Errorf("check Teleport connection: %w", err)
	}
	return nil
}

// ServerVersion is the Teleport version the last Check saw ("" before): the
// kube agent should run the cluster's own version.
func (c *Client) ServerVersion() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.serverVersion
}

// classify maps a Teleport API error to our sentinel and retry verdict.
// The client's interceptors have already turned gRPC codes into trace
// errors (Unavailable → ConnectionProblem, ResourceExhausted → LimitExceeded),
// so the shared retry.Classify alone would miss them.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case trace.IsNotFound(err):
		return retry.Permanent(fmt.Errorf("%w: %v", ErrNotFound, err))
	case trace.IsConnectionProblem(err), trace.IsLimitExceeded(err):
		return retry.Transient(err, 0)
	case trace.IsAccessDenied(err), trace.IsBadParameter(err), trace.IsAlreadyExists(err),
		trace.IsNotImplemented(err), trace.IsCompareFailed(err):
		return retry.Permanent(err)
	}
	if transient, after := retry.Classify(err); transient {
		return retry.Transient(err, after)
	}
	return retry.Permanent(err)
}

// redacted keeps secret out of err's message while errors.Is/As still see
// the whole chain: servers may echo a token name back in their errors.
type redacted struct {
	err    error
	secret string
}

func (r *redacted) Error() string {
	return strings.ReplaceAll(r.err.Error(), r.secret, Redact(r.secret))
}

func (r *redacted) Unwrap() error { return r.err }

func scrub(err error, secret string) error {
	if err == nil || secret == "" {
		return err
	}
	return &redacted{err: err, secret: secret}
}

// attempt runs one try of a call within AttemptTimeout. A try cut off by
// that timeout (not by the caller) is worth another.
func (c *Client) attempt(ctx context.Context, call func(ctx context.Context) error) error {
	actx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
	defer cancel()
	err := call(actx)
	if err != nil && actx.Err() != nil && ctx.Err() == nil {
		return retry.Transient(fmt.Errorf("no answer within %s: %w", c.attemptTimeout, err), 0)
	}
	return err
}
