// Package infisical reads and writes rawkode-cloud's secrets in Infisical
// through the official go-sdk, and provides an emulator of the Infisical API
// for tests and `provision --sandbox`.
//
// The settings resolved in phase 0 come from List; the Talos secrets bundle,
// talosconfig and kubeconfig are kept with Write instead of on disk, and
// removed with Delete on undo.
package infisical

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	sdk "github.com/infisical/go-sdk"
	"github.com/infisical/go-sdk/packages/models"

	"github.com/rawkode/rawkode-cloud/internal/retry"
)

// DefaultSiteURL is Infisical Cloud (US), used when Config.SiteURL is empty.
const DefaultSiteURL = "https://app.infisical.com"

// defaultAttemptTimeout bounds one HTTP exchange: the SDK takes no context,
// so without it one unanswered request would hold a call until its deadline.
const defaultAttemptTimeout = 30 * time.Second

// Config says where the secrets live and how to log in.
type Config struct {
	SiteURL      string // Infisical base URL without /api; DefaultSiteURL when empty
	ClientID     string // Universal Auth machine identity
	ClientSecret string
	ProjectID    string
	Environment  string // environment slug, e.g. "prod"
	SecretPath   string // folder that List reads; "/" when empty

	// Retry bounds the retries of each API call (its OnRetry sees every
	// retry); the zero value retries transient failures until the caller's
	// deadline.
	Retry retry.Policy
	// AttemptTimeout abandons one unanswered request and retries;
	// default 30s.
	AttemptTimeout time.Duration
	// OnRequest, when set, is told about every request sent (the SDK
	// offers no transport to count at), e.g. "list-secrets".
	OnRequest func(op string)
}

// ErrMissingConfig means a required setting was empty; nothing was sent.
var ErrMissingConfig = errors.New("incomplete Infisical configuration")

// Store is what the pipeline needs from a secrets manager.
type Store interface {
	List(ctx context.Context) (map[string]string, error)
	Write(ctx context.Context, path string, secrets map[string]string) error
	Delete(ctx context.Context, path string, names []string) error
}

var _ Store = (*Client)(nil)

// Client is a logged-in Infisical client. It owns the SDK's token-refresh
// goroutine: call Close when done.
type Client struct {
	sdk  sdk.InfisicalClientInterface
	cfg  Config
	stop context.CancelFunc
	once sync.Once
	// sensitive holds the credential and token so they can be scrubbed from
	// any error text the SDK or the server produces.
	sensitive []string
}

// Connect logs in with Universal Auth, retrying transient failures within ctx.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.SiteURL == "" {
		cfg.SiteURL = DefaultSiteURL
	}
	cfg.SecretPath = cleanPath(cfg.SecretPath)
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = defaultAttemptTimeout
	}
	// The refresh goroutine lives as long as the client, not as long as the
	// caller's (often phase-scoped) context; Close ends it.
	life, stop := context.WithCancel(context.WithoutCancel(ctx))
	c := &Client{
		sdk: sdk.NewInfisicalClient(life, sdk.Config{
			SiteUrl: strings.TrimSuffix(cfg.SiteURL, "/"),
			// Retries are ours (retry.Policy, bounded by ctx); the SDK's own
			// would sleep seconds per failure outside any deadline.
			RetryRequestsConfig: &sdk.RetryRequestsConfig{ExponentialBackoff: &sdk.ExponentialBackoffStrategy{MaxRetries: 0}},
			// The SDK logs warnings that quote raw errors; ours are scrubbed instead.
			SilentMode: true,
			LogWriter:  io.Discard,
		}),
		cfg:       cfg,
		stop:      stop,
		sensitive: []string{cfg.ClientSecret},
	}
	cred, err := call(ctx, c, "login", nil, func() (sdk.MachineIdentityCredential, error) {
		return c.sdk.Auth().UniversalAuthLogin(cfg.ClientID, cfg.ClientSecret)
	})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("log in to Infisical at %s as client %s: %w", cfg.SiteURL, cfg.ClientID, err)
	}
	c.sensitive = append(c.sensitive, cred.AccessToken)
	return c, nil
}

func (cfg Config) validate() error {
	var missing []string
	for _, f := range []struct{ name, val string }{
		{"client ID", cfg.ClientID}, {"client secret", cfg.ClientSecret},
		{"project ID", cfg.ProjectID}, {"environment", cfg.Environment},
	} {
		if f.val == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return retry.Permanent(fmt.Errorf("%w: missing %s", ErrMissingConfig, strings.Join(missing, ", ")))
	}
	return nil
}

// Close stops the SDK's token-refresh goroutine. It is safe to call twice.
// Requests abandoned after a timeout end when the server answers or closes.
func (c *Client) Close() {
	c.once.Do(c.stop)
}

// List returns every secret (name → value) in the configured project,
// environment and SecretPath. A folder that does not exist lists as empty;
// a project that does not exist is ErrNotFound.
func (c *Client) List(ctx context.Context) (map[string]string, error) {
	out, err := c.list(ctx, c.cfg.SecretPath)
	if err != nil {
		return nil, fmt.Errorf("list Infisical secrets in %s: %w", c.where(c.cfg.SecretPath), err)
	}
	return out, nil
}

func (c *Client) list(ctx context.Context, p string) (map[string]string, error) {
	res, err := call(ctx, c, "list-secrets", nil, func() (sdk.ListSecretsResult, error) {
		return c.sdk.Secrets().ListSecrets(sdk.ListSecretsOptions{
			ProjectID: c.cfg.ProjectID, Environment: c.cfg.Environment, SecretPath: p,
			// Values are returned verbatim: stored artifacts (kubeconfig,
			// Talos bundle) must not have ${...} expanded by the server.
			ExpandSecretReferences: false,
		})
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(res.Secrets))
	for _, s := range res.Secrets {
		out[s.SecretKey] = s.SecretValue
	}
	return out, nil
}

// Folders lists the names of the folders directly under path.
func (c *Client) Folders(ctx context.Context, secretPath string) ([]string, error) {
	p := c.resolve(secretPath)
	res, err := call(ctx, c, "list-folders", nil, func() ([]models.Folder, error) {
		return c.sdk.Folders().List(sdk.ListFoldersOptions{ProjectID: c.cfg.ProjectID, Environment: c.cfg.Environment, Path: p})
	})
	if err != nil {
		return nil, fmt.Errorf("list Infisical folders in %s: %w", c.where(p), err)
	}
	names := make([]string, 0, len(res))
	for _, f := range res {
		names = append(names, f.Name)
	}
	return names, nil
}

// Get returns one secret at path; ErrNotFound when it does not exist.
func (c *Client) Get(ctx context.Context, secretPath, name string) (string, error) {
	p := c.resolve(secretPath)
	s, err := call(ctx, c, "get-secret", nil, func() (models.Secret, error) {
		return c.sdk.Secrets().Retrieve(sdk.RetrieveSecretOptions{
			SecretKey: name, ProjectID: c.cfg.ProjectID, Environment: c.cfg.Environment, SecretPath: p,
		})
	})
	if err != nil {
		return "", fmt.Errorf("get Infisical secret %s in %s: %w", name, c.where(p), err)
	}
	return s.SecretValue, nil
}

// Write creates or updates each secret under path (empty: the configured
// SecretPath), creating the folder when needed. Unchanged secrets are not
// rewritten, so repeating a Write is cheap and adds no secret versions.
func (c *Client) Write(ctx context.Context, secretPath string, secrets map[string]string) error {
	p := c.resolve(secretPath)
	existing, err := c.list(ctx, p)
	if err != nil {
		return fmt.Errorf("write Infisical secrets in %s: %w", c.where(p), err)
	}
	for _, name := range slices.Sorted(maps.Keys(secrets)) {
		value := secrets[name]
		old, ok := existing[name]
		if ok && old == value {
			continue
		}
		if err := c.put(ctx, p, name, value, ok); err != nil {
			return fmt.Errorf("write Infisical secret %s in %s: %w", name, c.where(p), err)
		}
	}
	return nil
}

// put writes one secret. exists is what the last listing said; a race with
// another writer is resolved by switching between create and update.
func (c *Client) put(ctx context.Context, p, name, value string, exists bool) error {
	if exists && value == "" {
		// The SDK omits an empty secretValue from updates, which would leave
		// the old value in place: replace the secret instead.
		if err := c.deleteOne(ctx, p, name); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		exists = false
	}
	if exists {
		err := c.update(ctx, p, name, value)
		if !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	err := c.create(ctx, p, name, value)
	if errors.Is(err, ErrNotFound) {
		// Infisical refuses secrets in a folder that does not exist yet.
		if err := c.mkdir(ctx, p); err != nil {
			return err
		}
		err = c.create(ctx, p, name, value)
	}
	if isAlreadyExists(err) {
		return c.update(ctx, p, name, value)
	}
	return err
}

func (c *Client) create(ctx context.Context, p, name, value string) error {
	_, err := call(ctx, c, "create-secret", []string{value}, func() (models.Secret, error) {
		return c.sdk.Secrets().Create(sdk.CreateSecretOptions{
			SecretKey: name, SecretValue: value,
			ProjectID: c.cfg.ProjectID, Environment: c.cfg.Environment, SecretPath: p,
		})
	})
	return err
}

func (c *Client) update(ctx context.Context, p, name, value string) error {
	_, err := call(ctx, c, "update-secret", []string{value}, func() (models.Secret, error) {
		return c.sdk.Secrets().Update(sdk.UpdateSecretOptions{
			SecretKey: name, NewSecretValue: value,
			ProjectID: c.cfg.ProjectID, Environment: c.cfg.Environment, SecretPath: p,
		})
	})
	return err
}

// mkdir creates folder p; Infisical creates missing parents and answers an
// existing folder with itself.
func (c *Client) mkdir(ctx context.Context, p string) error {
	if p == "/" {
		return nil
	}
	_, err := call(ctx, c, "create-folder", nil, func() (models.Folder, error) {
		return c.sdk.Folders().Create(sdk.CreateFolderOptions{
			ProjectID: c.cfg.ProjectID, Environment: c.cfg.Environment,
			Name: path.Base(p), Path: path.Dir(p),
		})
	})
	if err != nil {
		return fmt.Errorf("create folder %s: %w", p, err)
	}
	return nil
}

// Delete removes the named secrets under path (empty: the configured
// SecretPath). Secrets that are already gone are not an error, so undo can
// run twice.
func (c *Client) Delete(ctx context.Context, secretPath string, names []string) error {
	p := c.resolve(secretPath)
	for _, name := range names {
		if err := c.deleteOne(ctx, p, name); err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("delete Infisical secret %s in %s: %w", name, c.where(p), err)
		}
	}
	return nil
}

func (c *Client) deleteOne(ctx context.Context, p, name string) error {
	_, err := call(ctx, c, "delete-secret", nil, func() (models.Secret, error) {
		return c.sdk.Secrets().Delete(sdk.DeleteSecretOptions{
			SecretKey: name, ProjectID: c.cfg.ProjectID, Environment: c.cfg.Environment, SecretPath: p,
		})
	})
	return err
}

func (c *Client) resolve(p string) string {
	if p == "" {
		return c.cfg.SecretPath
	}
	return cleanPath(p)
}

func (c *Client) where(p string) string {
	return fmt.Sprintf("project %s, environment %s, path %s", c.cfg.ProjectID, c.cfg.Environment, p)
}

// call runs one SDK call under the retry policy. The SDK's calls take no
// context, so each attempt runs in its own goroutine and is abandoned when
// ctx ends or the attempt times out; the abandoned request finishes (and its
// goroutine exits) when the server answers or drops the connection. Results
// travel only through the attempt's own channel, so an abandoned attempt can
// never overwrite a later one's. extra lists values, beyond the credentials,
// to scrub from errors.
func call[T any](ctx context.Context, c *Client, op string, extra []string, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	var out T
	err := c.cfg.Retry.Do(ctx, func(ctx context.Context) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if c.cfg.OnRequest != nil {
			c.cfg.OnRequest(op)
		}
		done := make(chan result, 1)
		go func() {
			v, err := fn()
			done <- result{v, err}
		}()
		timer := time.NewTimer(c.cfg.AttemptTimeout)
		defer timer.Stop()
		select {
		case r := <-done:
			out = r.v
			return c.classify(r.err, extra)
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return retry.Transient(fmt.Errorf("no answer from Infisical within %s", c.cfg.AttemptTimeout), 0)
		}
	})
	return out, err
}
