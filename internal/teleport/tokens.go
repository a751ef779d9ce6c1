package teleport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/gravitational/teleport/api/types"
	"github.com/gravitational/trace"

	"github.com/rawkode/rawkode-cloud/internal/retry"
)

// LabelCluster is the token label naming the cluster a join token was
// issued for, so destroy can find that cluster's outstanding tokens.
const LabelCluster = "rawkode-cloud/cluster"

// DefaultTokenTTL is how long a kube join token lives when no TTL is given:
// long enough for install, reboot and bootstrap, short enough to be useless soon after.
const DefaultTokenTTL = 30 * time.Minute

// tokenBytes of randomness make the name unguessable (128 bits).
const tokenBytes = 16

// Token is a join token. Its Name is a secret: String, GoString and
// LogValue redact it, so printing or logging a Token is safe.
type Token struct {
	Name    string
	Cluster string
	Expires time.Time
}

func (t Token) String() string {
	return fmt.Sprintf("token %s for %s (expires %s)", Redact(t.Name), t.Cluster, t.Expires.UTC().Format(time.RFC3339))
}

// GoString keeps %#v from printing the name.
func (t Token) GoString() string { return "teleport.Token{" + t.String() + "}" }

// LogValue keeps slog from printing the name.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", Redact(t.Name)),
		slog.String("cluster", t.Cluster),
		slog.Time("expires", t.Expires),
	)
}

// Redact shows only a short prefix of a secret name, enough to tell tokens
// apart in output without making them usable.
func Redact(name string) string {
	const keep = 4
	if len(name) <= keep*2 {
		return "****"
	}
	return name[:keep] + "****"
}

// CreateKubeToken issues a join token for clusterName's kube agent: role
// Kube, ttl (DefaultTokenTTL when zero), a crypto/rand name, labelled with
// LabelCluster.
func (c *Client) CreateKubeToken(ctx context.Context, clusterName string, ttl time.Duration) (Token, error) {
	name, err := NewTokenName()
	if err != nil {
		return Token{}, fmt.Errorf("generate join token for %s: %w", clusterName, err)
	}
	return c.createToken(ctx, name, types.RoleKube, clusterName, ttl)
}

// NewTokenName is a fresh unguessable join token name (crypto/rand).
func NewTokenName() (string, error) {
	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	return hex.EncodeToString(raw), nil
}

// CreateNodeToken issues a join token for an SSH node (role Node) under a
// name chosen beforehand with NewTokenName: the proxmox topology's host is
// configured with the name at its first boot, and its agent keeps trying
// until the Teleport VM exists and the token is created on it.
func (c *Client) CreateNodeToken(ctx context.Context, name, clusterName string, ttl time.Duration) (Token, error) {
	if len(name) < 2*tokenBytes {
		return Token{}, fmt.Errorf("node join token for %s: the name is too short to be unguessable", clusterName)
	}
	return c.createToken(ctx, name, types.RoleNode, clusterName, ttl)
}

func (c *Client) createToken(ctx context.Context, name string, role types.SystemRole, clusterName string, ttl time.Duration) (Token, error) {
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	tok := Token{Name: name, Cluster: clusterName, Expires: time.Now().Add(ttl).UTC()}
	pt, err := types.NewProvisionToken(tok.Name, types.SystemRoles{role}, tok.Expires)
	if err != nil {
		return Token{}, fmt.Errorf("build join token for %s: %w", clusterName, scrub(err, tok.Name))
	}
	pt.SetLabels(map[string]string{LabelCluster: clusterName})

	retried := false
	policy := c.scrubbedRetry(tok.Name)
	report := policy.OnRetry
	policy.OnRetry = func(a retry.Attempt) {
		retried = true
		if report != nil {
			report(a)
		}
	}
	err = policy.Do(ctx, func(ctx context.Context) error {
		return c.attempt(ctx, func(ctx context.Context) error {
			err := c.api.CreateToken(ctx, pt)
			if retried && trace.IsAlreadyExists(err) {
				// The name is unguessable, so after a lost reply it can only
				// be our own earlier attempt that landed.
				return nil
			}
			return classify(err)
		})
	})
	if err != nil {
		// The token is returned with the error: a request cut off (Ctrl-C,
		// a deadline) or answered with an outage may have created it all
		// the same, and its name, chosen here, is all a removal needs.
		return tok, fmt.Errorf("create join token for %s: %w", clusterName, scrub(err, tok.Name))
	}
	return tok, nil
}

// DeleteToken removes a token. A token that is already gone (or expired)
// is not an error, so undo can run twice.
func (c *Client) DeleteToken(ctx context.Context, name string) error {
	err := c.scrubbedRetry(name).Do(ctx, func(ctx context.Context) error {
		return c.attempt(ctx, func(ctx context.Context) error {
			return classify(c.api.DeleteToken(ctx, name))
		})
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete join token %s: %w", Redact(name), scrub(err, name))
	}
	return nil
}

// TokenExpiry asks Teleport when the token expires. Teleport, not this
// machine's clock, decides: its backend drops a token at its TTL (by the
// auth service's clock) and anyone with the right may remove it (tctl
// tokens rm). A token that is gone is ErrNotFound.
func (c *Client) TokenExpiry(ctx context.Context, name string) (time.Time, error) {
	var expires time.Time
	err := c.scrubbedRetry(name).Do(ctx, func(ctx context.Context) error {
		return c.attempt(ctx, func(ctx context.Context) error {
			t, err := c.api.GetToken(ctx, name)
			if err != nil {
				return classify(err)
			}
			expires = t.Expiry()
			return nil
		})
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("read join token %s: %w", Redact(name), scrub(err, name))
	}
	return expires, nil
}

// ListKubeTokens returns the unexpired Kube-role tokens labelled for
// clusterName, sorted by expiry (for destroy).
func (c *Client) ListKubeTokens(ctx context.Context, clusterName string) ([]Token, error) {
	var all []types.ProvisionToken
	err := c.retry.Do(ctx, func(ctx context.Context) error {
		return c.attempt(ctx, func(ctx context.Context) error {
			var err error
			all, err = c.api.GetTokens(ctx)
			return classify(err)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list join tokens for %s: %w", clusterName, err)
	}
	var out []Token
	for _, t := range all {
		if t.GetMetadata().Labels[LabelCluster] != clusterName || !slices.Contains(t.GetRoles(), types.RoleKube) {
			continue
		}
		out = append(out, Token{Name: t.GetName(), Cluster: clusterName, Expires: t.Expiry()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Expires.Before(out[j].Expires) })
	return out, nil
}

// scrubbedRetry is the client's policy with secret redacted from the
// errors its OnRetry reports.
func (c *Client) scrubbedRetry(secret string) retry.Policy {
	p := c.retry
	if on := p.OnRetry; on != nil {
		p.OnRetry = func(a retry.Attempt) {
			a.Err = scrub(a.Err, secret)
			on(a)
		}
	}
	return p
}
