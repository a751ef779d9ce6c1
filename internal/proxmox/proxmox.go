// Package proxmox drives a Proxmox VE node's API through the maintained
// go-proxmox library, behind the narrow interface the topology needs: log
// in, create the automation user and its token, build the internal bridge,
// open and close the firewall, set storage content types and wait for the
// node's tasks. Its emulator lives in ./emulator.
package proxmox

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	pve "github.com/luthermonson/go-proxmox"

	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// API is what provisioning uses of a Proxmox VE node.
type API interface {
	Version(ctx context.Context) (Version, error)
	// Users and tokens.
	EnsureUser(ctx context.Context, userID, comment string) error
	DeleteUser(ctx context.Context, userID string) error
	Grant(ctx context.Context, path, role string, userID string) error
	// CreateToken makes a token sharing its user's privileges (privsep=0)
	// and returns its secret, which the API shows only this once.
	CreateToken(ctx context.Context, userID, tokenID, comment string) (secret string, err error)
	DeleteToken(ctx context.Context, userID, tokenID string) error
	Tokens(ctx context.Context, userID string) ([]string, error)
	// SetPassword changes userID's password; confirm is the current
	// password of whoever makes the change (PVE 8 asks for it).
	SetPassword(ctx context.Context, userID, password, confirm string) error
	// Reachable reports whether the API answers at all from here (any
	// HTTP answer counts): a firewall that drops us makes it false.
	Reachable(ctx context.Context) bool
	// Network.
	CreateBridge(ctx context.Context, b Bridge) error
	DeleteInterface(ctx context.Context, iface string) error
	// ApplyNetwork applies pending interface changes and waits for the reload.
	ApplyNetwork(ctx context.Context) error
	Interface(ctx context.Context, iface string) (Interface, error)
	// Firewall.
	FirewallOptions(ctx context.Context, s Scope) (FirewallOptions, error)
	SetFirewallOptions(ctx context.Context, s Scope, o FirewallOptions) error
	FirewallRules(ctx context.Context, s Scope) ([]Rule, error)
	// AddRule adds r unless a rule with its comment exists (so a retried
	// call does not add it twice), at the top as PVE does.
	AddRule(ctx context.Context, s Scope, r Rule) error
	// DeleteRule removes the rule with this comment; ErrNotFound if none.
	DeleteRule(ctx context.Context, s Scope, comment string) error
	// Datacenter IP sets. pve-firewall materialises each as the kernel
	// ipset PVEFW-0-<name>-v4 while the firewall is on; host rules outside
	// PVE's own can match on it.
	EnsureIPSet(ctx context.Context, name, comment string) error
	// AddToIPSet adds the network unless the set holds it already.
	AddToIPSet(ctx context.Context, name string, p netip.Prefix, comment string) error
	// RemoveFromIPSet removes the network (in whatever spelling PVE stored
	// it) and checks that it is gone; a missing set or entry is no error.
	RemoveFromIPSet(ctx context.Context, name string, p netip.Prefix) error
	// IPSet lists a set's entries as networks; ErrNotFound without the set.
	IPSet(ctx context.Context, name string) ([]netip.Prefix, error)
	// Storage.
	StorageContent(ctx context.Context, storage string) ([]string, error)
	SetStorageContent(ctx context.Context, storage string, content []string) error
}

// ErrNotFound means the object does not exist; undo treats it as done.
var ErrNotFound = errors.New("not found on the Proxmox node")

// Scope is where firewall settings live: the datacenter (Node empty) or one node.
type Scope struct{ Node string }

func (s Scope) String() string {
	if s.Node == "" {
		return "cluster"
	}
	return "node/" + s.Node
}

func (s Scope) base() string {
	if s.Node == "" {
		return "/cluster/firewall"
	}
	return "/nodes/" + url.PathEscape(s.Node) + "/firewall"
}

// Version is the node's PVE version.
type Version struct{ Version, Release string }

// Bridge is a Linux bridge to create.
type Bridge struct {
	Iface   string // vmbr1
	CIDR    string // 10.10.0.1/24: the host's address on it
	Comment string
}

// Interface is a network interface as the node reports it.
type Interface struct {
	Iface, Type, CIDR string
	Active            bool
}

// FirewallOptions are the firewall switches the topology sets.
type FirewallOptions struct {
	Enable   bool
	PolicyIn string // ACCEPT, REJECT or DROP (datacenter only)
}

// Rule is one firewall rule.
type Rule struct {
	Pos     int
	Type    string // in, out
	Action  string // ACCEPT, DROP, REJECT
	Source  string
	Dport   string
	Proto   string
	Iface   string
	Comment string
	Enable  bool
}

// Config is what the adapter needs. Password and TokenSecret are secrets.
type Config struct {
	// URL is the API base, https://HOST:8006/api2/json.
	URL  string
	Node string
	// Either a login (root@pam + password) …
	Username, Password string
	// … or an API token ("user@realm!name" and its secret).
	TokenID, TokenSecret string
	HTTPClient           *http.Client
	// RequestTimeout bounds one HTTP attempt (default 30s).
	RequestTimeout time.Duration
	Retry          retry.Policy
	// TaskPoll is how often tasks are polled (default 1s).
	TaskPoll time.Duration
	// TaskTimeout bounds the wait for one task (default 10m): a task that
	// never ends must not hold the run forever.
	TaskTimeout time.Duration
}

// Client is the go-proxmox-backed API.
type Client struct {
	cfg Config
	c   *pve.Client
}

var _ API = (*Client)(nil)

// New builds a client; with a password it logs in (one ticket request).
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.URL == "" || cfg.Node == "" {
		return nil, errors.New("proxmox: URL and node are required")
	}
	if (cfg.Password == "") == (cfg.TokenSecret == "") {
		return nil, errors.New("proxmox: exactly one of password and API token is required")
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.TaskPoll <= 0 {
		cfg.TaskPoll = time.Second
	}
	if cfg.TaskTimeout <= 0 {
		cfg.TaskTimeout = 10 * time.Minute
	}
	base := cfg.HTTPClient
	if base == nil {
		base = &http.Client{}
	}
	hc := *base
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	hc.Transport = &statusTransport{next: rt}
	// go-proxmox's UploadReader takes no context: only the client's own
	// timeout bounds an upload to a node that stopped answering. Every
	// other call is bounded as tightly by its attempt's context already.
	if hc.Timeout <= 0 || hc.Timeout > cfg.RequestTimeout {
		hc.Timeout = cfg.RequestTimeout
	}
	opts := []pve.Option{pve.WithHTTPClient(&hc), pve.WithUserAgent("rawkode-cloud")}
	if cfg.TokenSecret != "" {
		opts = append(opts, pve.WithAPIToken(cfg.TokenID, cfg.TokenSecret))
	}
	cl := &Client{cfg: cfg, c: pve.NewClient(strings.TrimSuffix(cfg.URL, "/"), opts...)}
	if cfg.Password != "" {
		err := cl.do(ctx, func(ctx context.Context) error {
			_, err := cl.c.Ticket(ctx, &pve.Credentials{Username: cfg.Username, Password: cfg.Password})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("log in to Proxmox as %s: %w", cfg.Username, err)
		}
	}
	return cl, nil
}

// APIError is a refusal from the node: PVE puts its message in the HTTP
// reason phrase and, for refused parameters, a per-parameter map in the body.
type APIError struct {
	StatusCode int
	Message    string
	Params     map[string]string
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("proxmox API: HTTP %d %s", e.StatusCode, e.Message)
	for _, k := range sortedKeys(e.Params) {
		s += fmt.Sprintf("; %s: %s", k, strings.TrimSpace(e.Params[k]))
	}
	return s
}

// notFound are the messages PVE answers (with 500) for a missing object.
var notFound = regexp.MustCompile(`does not exist|no such |no rule at position`)

// Is maps PVE's ways of saying "missing" to ErrNotFound.
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && (e.StatusCode == http.StatusNotFound || notFound.MatchString(e.Message))
}

// statusTransport turns every non-2xx answer into an *APIError before
// go-proxmox sees it: the library reads a 503 or 595 body as success.
type statusTransport struct{ next http.RoundTripper }

func (t *statusTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := t.next.RoundTrip(r)
	if err != nil || res.StatusCode < 300 {
		return res, err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	msg := strings.TrimSpace(strings.TrimPrefix(res.Status, strconv.Itoa(res.StatusCode)))
	ae := &APIError{StatusCode: res.StatusCode, Message: msg}
	ae.Params = parseErrors(body)
	if s := res.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil {
			ae.RetryAfter = time.Duration(n) * time.Second
		}
	}
	return nil, ae
}

// do runs op under the retry policy with a per-attempt timeout; transient
// answers (429, 5xx except 500/501, PVE's 595/596 proxy errors, network
// errors) are retried.
func (c *Client) do(ctx context.Context, op func(context.Context) error) error {
	return c.cfg.Retry.Do(ctx, func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
		err := op(actx)
		if err == nil {
			return nil
		}
		var ae *APIError
		if errors.As(err, &ae) {
			if ae.StatusCode == 429 || ae.StatusCode == 502 || ae.StatusCode == 503 || ae.StatusCode == 504 ||
				ae.StatusCode == 595 || ae.StatusCode == 596 {
				return retry.Transient(ae, ae.RetryAfter)
			}
			return retry.Permanent(ae)
		}
		if ctx.Err() != nil {
			return err
		}
		// No answer: a timeout or a reset. Transient.
		return retry.Transient(unwrapURL(err), 0)
	})
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, redactURL(ue.URL), ue.Err)
	}
	return err
}

func redactURL(u string) string {
	if i := strings.Index(u, "?"); i >= 0 {
		return u[:i]
	}
	return u
}

func (c *Client) node() string { return url.PathEscape(c.cfg.Node) }

func (c *Client) get(ctx context.Context, path string, v any) error {
	return c.do(ctx, func(ctx context.Context) error { return unwrapAPI(c.c.Get(ctx, path, v)) })
}

func (c *Client) post(ctx context.Context, path string, body, v any) error {
	return c.do(ctx, func(ctx context.Context) error { return unwrapAPI(c.c.Post(ctx, path, body, v)) })
}

func (c *Client) put(ctx context.Context, path string, body, v any) error {
	return c.do(ctx, func(ctx context.Context) error { return unwrapAPI(c.c.Put(ctx, path, body, v)) })
}

func (c *Client) del(ctx context.Context, path string, v any) error {
	return c.do(ctx, func(ctx context.Context) error { return unwrapAPI(c.c.Delete(ctx, path, v)) })
}

// unwrapAPI digs an *APIError out of the *url.Error the HTTP client wraps it in.
func unwrapAPI(err error) error {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	return err
}

// Version reports the node's PVE version.
func (c *Client) Version(ctx context.Context) (Version, error) {
	var v pve.Version
	if err := c.get(ctx, "/version", &v); err != nil {
		return Version{}, fmt.Errorf("read Proxmox version: %w", err)
	}
	return Version{Version: v.Version, Release: v.Release}, nil
}

// WaitTask polls a task until it stops; a task that ends in anything but
// OK is an error naming its exit status.
func (c *Client) WaitTask(ctx context.Context, upid string) error {
	task := pve.NewTask(pve.UPID(upid), c.c)
	if task == nil {
		return fmt.Errorf("empty task ID")
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.TaskTimeout)
	defer cancel()
	return wait.Until(ctx, "Proxmox task "+task.Type, wait.Options{Interval: c.cfg.TaskPoll}, func(ctx context.Context) (bool, string, error) {
		var st struct {
			Status     string `json:"status"`
			ExitStatus string `json:"exitstatus"`
		}
		if err := c.get(ctx, fmt.Sprintf("/nodes/%s/tasks/%s/status", url.PathEscape(task.Node), url.PathEscape(upid)), &st); err != nil {
			return false, "", err
		}
		if st.Status != "stopped" {
			return false, st.Status, nil
		}
		if st.ExitStatus != "OK" {
			return false, "", retry.Permanent(fmt.Errorf("task %s failed: %s", task.Type, st.ExitStatus))
		}
		return true, "stopped", nil
	})
}

// PinnedClient trusts exactly one certificate (PEM): the one the CLI made
// for the host and put in its user data. Proxmox serves a self-signed
// certificate, so the usual chain check has nothing to check against; the
// pin is what keeps the root password from reaching anyone else.
func PinnedClient(certPEM []byte) (*http.Client, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("pinned certificate is not PEM")
	}
	want := block.Bytes
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain check is replaced, not skipped: VerifyPeerCertificate
		// accepts only the pinned certificate.
		InsecureSkipVerify: true, //nolint:gosec // pinned below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], want) {
				return errors.New("the Proxmox host presented a certificate other than the one it was given")
			}
			return nil
		},
	}
	return &http.Client{Transport: tr}, nil
}
