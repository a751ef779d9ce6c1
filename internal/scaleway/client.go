// Package scaleway orders, watches and removes Scaleway Elastic Metal servers
// through the official SDK (api/baremetal/v1, api/iam/v1alpha1), and holds
// an emulator of those APIs (emulator.go) that tests and `provision
// --sandbox` run against.
package scaleway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	baremetal "github.com/scaleway/scaleway-sdk-go/api/baremetal/v1"
	iam "github.com/scaleway/scaleway-sdk-go/api/iam/v1alpha1"
	"github.com/scaleway/scaleway-sdk-go/scw"
	"github.com/scaleway/scaleway-sdk-go/validation"

	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// DefaultZone is the zone used when Config.Zone is empty; it is where the
// cloud-init capable offers were recorded.
const DefaultZone = "fr-par-2"

// Tag values every server ordered by rawkode-cloud carries, so that
// `destroy --cluster-name` can find them again.
const (
	ToolTag          = "rawkode-cloud"
	clusterTagPrefix = "cluster="
	cloudInitTag     = "cloud-init"
)

// ClusterTags returns the tags that mark a server as part of cluster.
func ClusterTags(cluster string) []string {
	return []string{ToolTag, clusterTagPrefix + cluster}
}

// Config says how to reach the Scaleway API. SecretKey is a secret: it is
// never part of an error message.
type Config struct {
	AccessKey string
	SecretKey string
	ProjectID string
	// Zone defaults to DefaultZone.
	Zone string
	// APIURL overrides the API endpoint (no trailing slash). Empty means the
	// SDK default, or SCW_API_URL when set.
	APIURL string
	// HTTPClient defaults to a client with a 60s per-request timeout.
	HTTPClient *http.Client
	// Retry bounds the retries of single calls (all but CreateServer's
	// ambiguous failures); its OnRetry reports each retry. The caller's
	// context deadline is the overall bound.
	Retry retry.Policy
}

// Server is what the pipeline needs to know about an Elastic Metal server.
type Server struct {
	ID            string
	Name          string
	Status        string // baremetal server status: ordered, ready, deleting, error, ...
	InstallStatus string // OS install status: to_install, installing, completed, error
	IPv4          string // public IPv4, empty until assigned
	Zone          string
	OfferID       string
	Tags          []string
	CreatedAt     time.Time
	// UserData is the cloud-init user data the server carries; the API
	// returns it to anyone who may read the server.
	UserData []byte
}

// ServerSpec is one server to order with its OS install and cloud-init.
type ServerSpec struct {
	Name        string
	Description string
	OfferID     string
	OSID        string
	Hostname    string
	SSHKeyIDs   []string
	UserData    []byte
	Tags        []string
}

// Client talks to the Elastic Metal and IAM APIs of one project and zone.
type Client struct {
	bm      *baremetal.API
	iam     *iam.API
	project string
	zone    scw.Zone
	policy  retry.Policy
}

// New builds a Client. It validates the credentials itself first because
// the SDK's own validation errors quote the secret key.
func New(cfg Config) (*Client, error) {
	if err := ValidateCredentials(cfg.AccessKey, cfg.SecretKey, cfg.ProjectID); err != nil {
		return nil, fmt.Errorf("scaleway client: %w", err)
	}
	zone := cfg.Zone
	if zone == "" {
		zone = DefaultZone
	}
	if err := ValidateZone(zone); err != nil {
		return nil, fmt.Errorf("scaleway client: %w", err)
	}
	opts := []scw.ClientOption{
		// WithEnv first so that explicit settings below win, while
		// SCW_API_URL still applies when APIURL is empty.
		scw.WithEnv(),
		scw.WithAuth(cfg.AccessKey, cfg.SecretKey),
		scw.WithDefaultProjectID(cfg.ProjectID),
		scw.WithDefaultZone(scw.Zone(zone)),
		scw.WithHTTPClient(withRetryAfter(cfg.HTTPClient)),
		scw.WithUserAgent("rawkode-cloud"),
	}
	if cfg.APIURL != "" {
		opts = append(opts, scw.WithAPIURL(strings.TrimRight(cfg.APIURL, "/")))
	}
	sc, err := scw.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("scaleway client: %w", redactErr(err, cfg.SecretKey))
	}
	return &Client{
		bm:      baremetal.NewAPI(sc),
		iam:     iam.NewAPI(sc),
		project: cfg.ProjectID,
		zone:    scw.Zone(zone),
		policy:  cfg.Retry,
	}, nil
}

// ValidateAccessKey checks the SCW[A-Z0-9]{17} format.
func ValidateAccessKey(s string) error {
	if !validation.IsAccessKey(s) {
		return errors.New("access key must look like SCWXXXXXXXXXXXXXXXXX (SCW followed by 17 upper-case letters or digits)")
	}
	return nil
}

// ValidateSecretKey checks that the secret key is a UUID without quoting it.
func ValidateSecretKey(s string) error {
	if !validation.IsSecretKey(s) {
		return errors.New("secret key must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
	}
	return nil
}

// ValidateProjectID checks that the project ID is a UUID.
func ValidateProjectID(s string) error {
	if !validation.IsProjectID(s) {
		return fmt.Errorf("project ID %q must be a UUID", s)
	}
	return nil
}

// ValidateZone checks the zone format (e.g. fr-par-2).
func ValidateZone(s string) error {
	if !validation.IsZone(s) {
		return fmt.Errorf("zone %q must look like fr-par-2", s)
	}
	return nil
}

// ValidateCredentials reports every malformed credential at once.
func ValidateCredentials(accessKey, secretKey, projectID string) error {
	return errors.Join(ValidateAccessKey(accessKey), ValidateSecretKey(secretKey), ValidateProjectID(projectID))
}

// do runs one idempotent call with the client's retry policy, bounded by ctx.
func (c *Client) do(ctx context.Context, op func(ctx context.Context, ra *retryAfter) error) error {
	return c.policy.Do(ctx, func(ctx context.Context) error {
		ctx, ra := withRetryAfterSlot(ctx)
		return op(ctx, ra)
	})
}

// ListSSHKeyIDs returns the IDs of the project's enabled SSH keys. The
// Elastic Metal Ubuntu install refuses to run without one, so none is an
// error (ErrNoSSHKeys).
func (c *Client) ListSSHKeyIDs(ctx context.Context) ([]string, error) {
	var resp *iam.ListSSHKeysResponse
	err := c.do(ctx, func(ctx context.Context, ra *retryAfter) error {
		var err error
		resp, err = c.iam.ListSSHKeys(&iam.ListSSHKeysRequest{ProjectID: &c.project},
			scw.WithContext(ctx), scw.WithAllPages())
		return classify(err, ra)
	})
	if err != nil {
		return nil, fmt.Errorf("list SSH keys of project %s: %w", c.project, err)
	}
	var ids []string
	for _, k := range resp.SSHKeys {
		if k != nil && !k.Disabled {
			ids = append(ids, k.ID)
		}
	}
	if len(ids) == 0 {
		return nil, retry.Permanent(fmt.Errorf("project %s: %w", c.project, ErrNoSSHKeys))
	}
	return ids, nil
}

// CheckCompatibility makes sure the pivot can run on offerID with osID
// before anything is ordered: the OS must support cloud-init, the offer
// must be in stock and advertise cloud-init. Mismatches wrap ErrIncompatible.
func (c *Client) CheckCompatibility(ctx context.Context, offerID, osID string) error {
	var osInfo *baremetal.OS
	err := c.do(ctx, func(ctx context.Context, ra *retryAfter) error {
		var err error
		osInfo, err = c.bm.GetOS(&baremetal.GetOSRequest{Zone: c.zone, OsID: osID}, scw.WithContext(ctx))
		return classify(err, ra)
	})
	if errors.Is(err, ErrNotFound) {
		return retry.Permanent(fmt.Errorf("OS %s does not exist in zone %s: %w", osID, c.zone, ErrIncompatible))
	}
	if err != nil {
		return fmt.Errorf("get OS %s: %w", osID, err)
	}
	if !osInfo.CloudInitSupported {
		return retry.Permanent(fmt.Errorf("OS %s (%s %s) does not support cloud-init: %w", osID, osInfo.Name, osInfo.Version, ErrIncompatible))
	}

	var offer *baremetal.Offer
	err = c.do(ctx, func(ctx context.Context, ra *retryAfter) error {
		var err error
		offer, err = c.bm.GetOffer(&baremetal.GetOfferRequest{Zone: c.zone, OfferID: offerID}, scw.WithContext(ctx))
		return classify(err, ra)
	})
	if errors.Is(err, ErrNotFound) {
		return retry.Permanent(fmt.Errorf("offer %s does not exist in zone %s: %w", offerID, c.zone, ErrIncompatible))
	}
	if err != nil {
		return fmt.Errorf("get offer %s: %w", offerID, err)
	}
	if offer.Stock == baremetal.OfferStockEmpty || offer.Stock == "" {
		return retry.Permanent(fmt.Errorf("offer %s (%s) is out of stock in zone %s: %w", offerID, offer.Name, c.zone, ErrIncompatible))
	}
	if !slices.Contains(offer.Tags, cloudInitTag) {
		return retry.Permanent(fmt.Errorf("offer %s (%s) does not support cloud-init (no %q tag): %w", offerID, offer.Name, cloudInitTag, ErrIncompatible))
	}
	if slices.Contains(offer.IncompatibleOsIDs, osID) {
		return retry.Permanent(fmt.Errorf("OS %s (%s) cannot be installed on offer %s (%s): %w", osID, osInfo.Name, offerID, offer.Name, ErrIncompatible))
	}
	return nil
}

// CreateServer orders one server with its OS install and cloud-init user
// data in a single call.
//
// It is retried only when the failure proves nothing was ordered: HTTP 429
// (rejected before processing) and connection refused (the request never
// left). Any other failure (5xx, timeout, connection reset) is ambiguous: a
// retried POST could order and bill a second server, so it is returned as
// permanent and wraps ErrMaybeCreated; the caller finds a possible orphan
// with FindServers on the spec's tags.
func (c *Client) CreateServer(ctx context.Context, spec ServerSpec) (*Server, error) {
	req := &baremetal.CreateServerRequest{
		Zone:        c.zone,
		OfferID:     spec.OfferID,
		ProjectID:   &c.project,
		Name:        spec.Name,
		Description: spec.Description,
		Tags:        spec.Tags,
	}
	// Without an OS the server is only ordered: its IPs are known while it
	// is delivered, and InstallServer installs it later (the flow that
	// delivers the Talos config with the install).
	if spec.OSID != "" {
		req.Install = &baremetal.CreateServerRequestInstall{
			OsID:      spec.OSID,
			Hostname:  spec.Hostname,
			SSHKeyIDs: spec.SSHKeyIDs,
		}
	}
	if len(spec.UserData) > 0 {
		ud := spec.UserData
		req.UserData = &ud
	}
	var srv *baremetal.Server
	err := c.policy.Do(ctx, func(ctx context.Context) error {
		ctx, ra := withRetryAfterSlot(ctx)
		var err error
		srv, err = c.bm.CreateServer(req, scw.WithContext(ctx))
		return classifyCreate(err, ra)
	})
	if err != nil {
		return nil, fmt.Errorf("create server %q (offer %s): %w", spec.Name, spec.OfferID, err)
	}
	return fromSDK(srv), nil
}

// GetServer returns the current state of one server; ErrNotFound when gone.
func (c *Client) GetServer(ctx context.Context, id string) (*Server, error) {
	var srv *baremetal.Server
	err := c.do(ctx, func(ctx context.Context, ra *retryAfter) error {
		var err error
		srv, err = c.getOnce(ctx, id, ra)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get server %s: %w", id, err)
	}
	return fromSDK(srv), nil
}

func (c *Client) getOnce(ctx context.Context, id string, ra *retryAfter) (*baremetal.Server, error) {
	srv, err := c.bm.GetServer(&baremetal.GetServerRequest{Zone: c.zone, ServerID: id}, scw.WithContext(ctx))
	return srv, classify(err, ra)
}

// WaitReady polls until the server is delivered (ready) AND its OS install
// has completed: the API says ready long before the install even starts.
// Each change is reported through opts.OnState ("ordered",
// "ready/to_install", "ready/installing", "ready/completed"); transient
// errors through opts.OnRetry. Failed installs and servers in error,
// out_of_stock or locked fail at once with a permanent error.
func (c *Client) WaitReady(ctx context.Context, id string, opts wait.Options) (*Server, error) {
	return c.waitServer(ctx, id, "server "+id+" delivered and OS installed", opts, func(s *Server) bool {
		return s.Status == string(baremetal.ServerStatusReady) && s.InstallStatus == string(baremetal.ServerInstallStatusCompleted)
	})
}

// WaitIPv4 polls until the server has a public IPv4. Scaleway assigns it
// while the server is still ordered, so the caller can start probing the
// node long before WaitReady returns. Fails fast like WaitReady.
func (c *Client) WaitIPv4(ctx context.Context, id string, opts wait.Options) (*Server, error) {
	return c.waitServer(ctx, id, "public IPv4 of server "+id, opts, func(s *Server) bool {
		return s.IPv4 != ""
	})
}

func (c *Client) waitServer(ctx context.Context, id, what string, opts wait.Options, done func(*Server) bool) (*Server, error) {
	var last *Server
	var failure error
	err := wait.Until(ctx, what, opts, func(ctx context.Context) (bool, string, error) {
		ctx, ra := withRetryAfterSlot(ctx)
		srv, err := c.getOnce(ctx, id, ra)
		if err != nil {
			return false, "", err
		}
		last = fromSDK(srv)
		// A failed state ends the wait as "done" so that it is still
		// reported through OnState; the failure is returned below.
		failure = failed(last)
		return failure != nil || done(last), stateOf(last), nil
	})
	if err == nil {
		err = failure
	}
	if err != nil {
		return last, fmt.Errorf("wait for %s: %w", what, err)
	}
	return last, nil
}

// failed turns the states from which a server never becomes usable into a
// permanent error.
func failed(s *Server) error {
	switch baremetal.ServerStatus(s.Status) {
	case baremetal.ServerStatusError, baremetal.ServerStatusOutOfStock, baremetal.ServerStatusLocked:
		return retry.Permanent(fmt.Errorf("server %s (offer %s) is %s (install %s): %w", s.ID, s.OfferID, s.Status, s.InstallStatus, ErrServerFailed))
	}
	if s.InstallStatus == string(baremetal.ServerInstallStatusError) {
		return retry.Permanent(fmt.Errorf("server %s: OS install failed (server %s, install %s): %w", s.ID, s.Status, s.InstallStatus, ErrServerFailed))
	}
	return nil
}

// Failed is the permanent error of a server that will never become usable
// (in error, out of stock, locked, or its install failed); nil otherwise.
func (s Server) Failed() error { return failed(&s) }

// Installed reports whether the server is delivered and its OS installed.
func (s Server) Installed() bool {
	return s.Status == string(baremetal.ServerStatusReady) && s.InstallStatus == string(baremetal.ServerInstallStatusCompleted)
}

// State is how a wait names the server's state ("ordered", "ready/installing").
func (s Server) State() string { return stateOf(&s) }

// WatchServers lists the servers carrying every one of tags once per
// opts.Interval and hands each answer to see until see is done or fails, or
// ctx ends: one request per poll however many servers are awaited.
// Transient errors are retried (reported through opts.OnRetry).
func (c *Client) WatchServers(ctx context.Context, tags []string, opts wait.Options, see func([]Server) (done bool, err error)) error {
	what := "servers tagged " + strings.Join(tags, ",")
	return wait.Until(ctx, what, opts, func(ctx context.Context) (bool, string, error) {
		ctx, ra := withRetryAfterSlot(ctx)
		resp, err := c.bm.ListServers(&baremetal.ListServersRequest{Zone: c.zone, ProjectID: &c.project, Tags: tags},
			scw.WithContext(ctx), scw.WithAllPages())
		if err := classify(err, ra); err != nil {
			return false, "", fmt.Errorf("list %s: %w", what, err)
		}
		var list []Server
		for _, srv := range resp.Servers {
			if srv != nil && hasAll(srv.Tags, tags) {
				list = append(list, *fromSDK(srv))
			}
		}
		done, err := see(list)
		return done, "", err
	})
}

func stateOf(s *Server) string {
	if s.Status == string(baremetal.ServerStatusReady) {
		return s.Status + "/" + s.InstallStatus
	}
	return s.Status
}

// DeleteServer deletes the server and waits until the API no longer knows
// it. A server that is already gone counts as deleted, so undo can run twice.
func (c *Client) DeleteServer(ctx context.Context, id string, opts wait.Options) error {
	err := c.do(ctx, func(ctx context.Context, ra *retryAfter) error {
		_, err := c.bm.DeleteServer(&baremetal.DeleteServerRequest{Zone: c.zone, ServerID: id}, scw.WithContext(ctx))
		return classify(err, ra)
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("delete server %s: %w", id, err)
	}
	err = wait.Until(ctx, "server "+id+" deleted", opts, func(ctx context.Context) (bool, string, error) {
		ctx, ra := withRetryAfterSlot(ctx)
		srv, err := c.getOnce(ctx, id, ra)
		if errors.Is(err, ErrNotFound) {
			return true, "deleted", nil
		}
		if err != nil {
			return false, "", err
		}
		return false, srv.Status.String(), nil
	})
	if err != nil {
		return fmt.Errorf("delete server %s: %w", id, err)
	}
	return nil
}

// FindServers lists the project's servers in the zone carrying every one of
// tags (all pages). The API's tag filter is applied again here so that a
// looser server-side match can never select another cluster's server.
func (c *Client) FindServers(ctx context.Context, tags ...string) ([]Server, error) {
	var resp *baremetal.ListServersResponse
	err := c.do(ctx, func(ctx context.Context, ra *retryAfter) error {
		var err error
		resp, err = c.bm.ListServers(&baremetal.ListServersRequest{Zone: c.zone, ProjectID: &c.project, Tags: tags},
			scw.WithContext(ctx), scw.WithAllPages())
		return classify(err, ra)
	})
	if err != nil {
		return nil, fmt.Errorf("list servers tagged %s: %w", strings.Join(tags, ","), err)
	}
	var out []Server
	for _, s := range resp.Servers {
		if s == nil || !hasAll(s.Tags, tags) {
			continue
		}
		out = append(out, *fromSDK(s))
	}
	return out, nil
}

func hasAll(have, want []string) bool {
	for _, t := range want {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

func fromSDK(s *baremetal.Server) *Server {
	out := &Server{
		ID:      s.ID,
		Name:    s.Name,
		Status:  s.Status.String(),
		Zone:    s.Zone.String(),
		OfferID: s.OfferID,
		Tags:    slices.Clone(s.Tags),
	}
	if s.Install != nil {
		out.InstallStatus = s.Install.Status.String()
	}
	if s.UserData != nil {
		out.UserData = slices.Clone(*s.UserData)
	}
	if s.CreatedAt != nil {
		out.CreatedAt = *s.CreatedAt
	}
	for _, ip := range s.IPs {
		if ip != nil && ip.Version == baremetal.IPVersionIPv4 && ip.Address != nil {
			out.IPv4 = ip.Address.String()
			break
		}
	}
	return out
}
