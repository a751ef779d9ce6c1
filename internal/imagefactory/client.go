package imagefactory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/retry"
)

// DefaultURL is the public Image Factory.
const DefaultURL = "https://factory.talos.dev"

// ErrNotFound is returned for a schematic the factory does not know.
var ErrNotFound = errors.New("image factory: not found")

// APIError is a non-2xx answer. The factory answers errors as plain text
// (Go's http.Error), so Message is that text.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("image factory answered %d: %s", e.Status, e.Message)
}

// ExtensionInfo is one entry of /version/{v}/extensions/official.
type ExtensionInfo struct {
	Name        string `json:"name"`
	Ref         string `json:"ref"`
	Digest      string `json:"digest"`
	Author      string `json:"author"`
	Description string `json:"description"`
}

// Options configure a Client.
type Options struct {
	// URL of the factory; DefaultURL when empty.
	URL string
	// HTTPClient; http.DefaultClient when nil.
	HTTPClient *http.Client
	// Retry bounds retries of transient failures (5xx, 429, resets).
	Retry retry.Policy
}

// Client talks to one Image Factory.
type Client struct {
	base  string
	http  *http.Client
	retry retry.Policy
}

// New returns a client for the factory at opts.URL.
func New(opts Options) (*Client, error) {
	base := strings.TrimRight(opts.URL, "/")
	if base == "" {
		base = DefaultURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("image factory URL %q: want http(s)://host", opts.URL)
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: base, http: hc, retry: opts.Retry}, nil
}

// URL is the factory's base URL.
func (c *Client) URL() string { return c.base }

// Versions lists the Talos versions the factory builds, e.g. "v1.12.4".
func (c *Client) Versions(ctx context.Context) ([]string, error) {
	var out []string
	if err := c.getJSON(ctx, "/versions", &out); err != nil {
		return nil, fmt.Errorf("list Talos versions: %w", err)
	}
	return out, nil
}

// OfficialExtensions lists the extensions available for a Talos version.
func (c *Client) OfficialExtensions(ctx context.Context, version string) ([]ExtensionInfo, error) {
	var out []ExtensionInfo
	if err := c.getJSON(ctx, "/version/"+url.PathEscape(version)+"/extensions/official", &out); err != nil {
		return nil, fmt.Errorf("list extensions for Talos %s: %w", version, err)
	}
	return out, nil
}

// Check refuses, before anything is created, a schematic the factory would
// accept but could never build for version: `POST /schematics` takes any
// extension name, and only the image download fails (400 "official extension
// ... is not available"), which on Proxmox would be a failed download-url
// task long after the host was paid for.
func (c *Client) Check(ctx context.Context, version string, s Schematic) error {
	versions, err := c.Versions(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(versions, version) {
		return fmt.Errorf("the Image Factory does not build Talos %s (it offers %s)", version, summarize(versions))
	}
	want := s.Customization.SystemExtensions.OfficialExtensions
	if len(want) == 0 {
		return nil
	}
	exts, err := c.OfficialExtensions(ctx, version)
	if err != nil {
		return err
	}
	have := make(map[string]bool, len(exts))
	for _, e := range exts {
		have[e.Name] = true
	}
	var missing []string
	for _, name := range want {
		if !have[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the Image Factory has no official extension %s for Talos %s", strings.Join(missing, ", "), version)
	}
	return nil
}

// CreateSchematic registers s and returns its ID. Creating is idempotent
// (the ID is the content's hash), so there is nothing to undo; the ID the
// factory returns is checked against the local hash, because a mismatch
// would mean the images are not the ones `plan` rendered.
func (c *Client) CreateSchematic(ctx context.Context, s Schematic) (string, error) {
	body, err := s.Marshal()
	if err != nil {
		return "", err
	}
	want, err := s.ID()
	if err != nil {
		return "", err
	}
	var resp struct {
		ID string `json:"id"`
	}
	err = c.retry.Do(ctx, func(ctx context.Context) error {
		return c.do(ctx, http.MethodPost, "/schematics", body, "application/yaml", &resp)
	})
	if err != nil {
		return "", fmt.Errorf("create Image Factory schematic: %w", err)
	}
	if resp.ID != want {
		return "", fmt.Errorf("create Image Factory schematic: the factory answered ID %s, the schematic hashes to %s", resp.ID, want)
	}
	return resp.ID, nil
}

// GetSchematic reads a schematic back; ErrNotFound when the factory has none.
func (c *Client) GetSchematic(ctx context.Context, id string) (Schematic, error) {
	var raw []byte
	err := c.retry.Do(ctx, func(ctx context.Context) error {
		var err error
		raw, err = c.raw(ctx, http.MethodGet, "/schematics/"+url.PathEscape(id))
		return err
	})
	if err != nil {
		return Schematic{}, fmt.Errorf("get Image Factory schematic %s: %w", id, err)
	}
	return ParseSchematic(raw)
}

// ImageURL is where the factory serves an asset built from a schematic, e.g.
// ImageURL(id, "v1.12.4", "nocloud-amd64.qcow2").
func (c *Client) ImageURL(id, version, asset string) string {
	return c.base + "/image/" + url.PathEscape(id) + "/" + url.PathEscape(version) + "/" + url.PathEscape(asset)
}

// CheckImage asks the factory (HEAD) whether it can serve the asset, so a
// download handed to another system (Proxmox's download-url) cannot fail for
// a reason we could have seen here. It returns the asset's size.
func (c *Client) CheckImage(ctx context.Context, id, version, asset string) (int64, error) {
	var size int64
	err := c.retry.Do(ctx, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.ImageURL(id, version, asset), nil)
		if err != nil {
			return retry.Permanent(err)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 400 && resp.StatusCode < 500 {
			// A HEAD answer has no body, and the body is the reason. The
			// factory refuses before it builds anything, so asking again
			// with GET costs no build.
			_, err = c.raw(ctx, http.MethodGet, strings.TrimPrefix(c.ImageURL(id, version, asset), c.base))
			if err != nil {
				return err
			}
		}
		if err := statusError(resp, ""); err != nil {
			return err
		}
		size, _ = strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("check Image Factory asset %s for Talos %s: %w", asset, version, err)
	}
	return size, nil
}

func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	return c.retry.Do(ctx, func(ctx context.Context) error {
		return c.do(ctx, http.MethodGet, path, nil, "", out)
	})
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, contentType string, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return retry.Permanent(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if err := statusError(resp, string(data)); err != nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return retry.Permanent(fmt.Errorf("decode %s %s: %w", method, path, err))
	}
	return nil
}

func (c *Client) raw(ctx context.Context, method, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, retry.Permanent(err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	return data, statusError(resp, string(data))
}

// statusError classifies a non-2xx answer: 404 is ErrNotFound, 429 and 5xx
// are worth retrying (honouring Retry-After), anything else is permanent.
func statusError(resp *http.Response, body string) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	apiErr := &APIError{Status: resp.StatusCode, Message: strings.TrimSpace(body)}
	if resp.StatusCode == http.StatusNotFound {
		return retry.Permanent(fmt.Errorf("%w: %w", ErrNotFound, apiErr))
	}
	if retry.HTTPTransient(resp.StatusCode) {
		var after time.Duration
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			after = time.Duration(s) * time.Second
		}
		return retry.Transient(apiErr, after)
	}
	return retry.Permanent(apiErr)
}

func summarize(vs []string) string {
	if len(vs) > 5 {
		return strings.Join(vs[len(vs)-5:], ", ") + " and older"
	}
	if len(vs) == 0 {
		return "nothing"
	}
	return strings.Join(vs, ", ")
}
