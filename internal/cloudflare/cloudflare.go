// Package cloudflare points a DNS A record at the new server and can put the
// record back exactly as it was, through the official cloudflare-go SDK. It
// also holds an emulator of the v4 DNS records API for tests and the sandbox.
package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	cf "github.com/cloudflare/cloudflare-go/v6"
	"github.com/cloudflare/cloudflare-go/v6/dns"
	"github.com/cloudflare/cloudflare-go/v6/option"

	"github.com/rawkode/rawkode-cloud/internal/retry"
)

// DefaultBaseURL is Cloudflare's production v4 API.
const DefaultBaseURL = "https://api.cloudflare.com/client/v4/"

// pageSize is what FindA asks for per page: the API's own default, so a
// listing behaves the same whether or not the server honours per_page.
const pageSize = 100

// Config is what the adapter needs. APIToken is a secret: it is only ever
// sent in the Authorization header, never written into an error or a log.
type Config struct {
	APIToken string
	ZoneID   string
	// BaseURL defaults to DefaultBaseURL; the emulator's URL() fits here.
	BaseURL    string
	HTTPClient *http.Client

	// TTL for created records in seconds; 0 means automatic (1). When set,
	// a record with another TTL counts as different and is updated.
	TTL int
	// Comment is stored on created records so operators can tell who made them.
	Comment string
	// RequestTimeout bounds one HTTP attempt (default 30s) so a hung API
	// call is retried instead of eating the caller's whole deadline.
	RequestTimeout time.Duration
	// Retry is the policy for single calls; set OnRetry to see retries.
	// Its loop is always bounded by the caller's context.
	Retry retry.Policy
}

// Client manages A records in one zone. Safe for concurrent use.
type Client struct {
	cfg     Config
	records *dns.RecordService
	api     *cf.Client
}

// ErrNotFound means the record does not exist (Cloudflare code 81044).
var ErrNotFound = errors.New("DNS record not found")

// ErrAmbiguous means several A records share the name, so there is no single
// record to point at the server without silently dropping the others.
var ErrAmbiguous = errors.New("several A records with this name")

// New checks cfg and builds a client; it makes no network call.
func New(cfg Config) (*Client, error) {
	if strings.TrimSpace(cfg.APIToken) == "" {
		return nil, errors.New("cloudflare: API token is required")
	}
	if strings.TrimSpace(cfg.ZoneID) == "" {
		return nil, errors.New("cloudflare: zone ID is required")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.TTL != 0 && cfg.TTL != 1 && (cfg.TTL < 30 || cfg.TTL > 86400) {
		return nil, fmt.Errorf("cloudflare: TTL %d out of range (1 for automatic, or 30..86400)", cfg.TTL)
	}
	client := cf.NewClient(
		option.WithBaseURL(cfg.BaseURL),
		option.WithAPIToken(cfg.APIToken),
		option.WithHTTPClient(cfg.HTTPClient),
		// Retries are ours (internal/retry), bounded by the caller's context.
		option.WithMaxRetries(0),
		// NewClient also reads CLOUDFLARE_API_KEY/EMAIL from the environment;
		// drop those so only the configured token authenticates.
		option.WithHeaderDel("X-Auth-Key"),
		option.WithHeaderDel("X-Auth-Email"),
		option.WithHeaderDel("X-Auth-User-Service-Key"),
	)
	return &Client{cfg: cfg, records: client.DNS.Records, api: client}, nil
}

// Record is one DNS record, with every field a revert must put back.
type Record struct {
	ID      string
	ZoneID  string
	Name    string
	Type    string
	Content string
	TTL     int // seconds; 1 means automatic
	Proxied bool
	Comment string
	Tags    []string
	// IPv4Only and IPv6Only are the record's settings (meaningful when proxied).
	IPv4Only bool
	IPv6Only bool
}

func (r Record) clone() Record {
	r.Tags = slices.Clone(r.Tags)
	return r
}

// Change is what UpsertA did, with enough of the previous state for Revert to
// restore it exactly.
type Change struct {
	Name     string
	RecordID string
	// Created is true when the record did not exist before.
	Created bool
	// Previous is the record as it was before an update; nil when created or unchanged.
	Previous *Record
	// Current is the record as it is now.
	Current Record

	// preexisting are the IDs of the A records with this name before a
	// create whose answer is not known (RecordID empty): Revert removes
	// the record by name and content, never one of these.
	preexisting []string
}

// maybeCreated is the Change of a create whose request may have gone out
// but whose answer did not arrive (or has not yet): Revert finds the record
// by name and content among those that were not there before.
func maybeCreated(name, content string, before []Record) Change {
	ids := make([]string, len(before))
	for i, r := range before {
		ids[i] = r.ID
	}
	return Change{Name: name, Created: true, Current: Record{Name: name, Type: "A", Content: content}, preexisting: ids}
}

// Changed reports whether UpsertA modified anything (and Revert has work to do).
func (c Change) Changed() bool { return c.Created || c.Previous != nil }

// String describes the change for progress output.
func (c Change) String() string {
	switch {
	case c.Created:
		return fmt.Sprintf("created A %s → %s", c.Name, c.Current.Content)
	case c.Previous != nil:
		return fmt.Sprintf("updated A %s %s → %s", c.Name, c.Previous.Content, c.Current.Content)
	default:
		return fmt.Sprintf("A %s already → %s", c.Name, c.Current.Content)
	}
}

// UpsertA makes name resolve to ipv4 through exactly one unproxied A record:
// it creates the record when absent, updates it when different and leaves it
// alone when equal. On error the returned Change is still safe to Revert
// (it restores the old record if an update may have landed). Unproxied because the record fronts the Talos and
// Kubernetes APIs (TCP 50000/6443), which Cloudflare's HTTP proxy cannot carry.
func (c *Client) UpsertA(ctx context.Context, name, ipv4 string) (Change, error) {
	name = normalizeName(name)
	addr, err := netip.ParseAddr(strings.TrimSpace(ipv4))
	if err != nil || !addr.Is4() {
		return Change{}, retry.Permanent(fmt.Errorf("upsert DNS record %s: %q is not an IPv4 address", name, ipv4))
	}
	if name == "" {
		return Change{}, retry.Permanent(errors.New("upsert DNS record: empty name"))
	}
	content := addr.String()
	existing, err := c.findA(ctx, name)
	if err != nil {
		return Change{}, fmt.Errorf("upsert DNS record %s: %w", name, err)
	}
	switch len(existing) {
	case 0:
		rec, err := c.create(ctx, name, content, existing)
		if err != nil {
			// The create may have landed with its answer lost.
			return maybeCreated(name, content, existing), fmt.Errorf("create DNS record %s: %w", name, err)
		}
		return Change{Name: name, RecordID: rec.ID, Created: true, Current: rec}, nil
	case 1:
		old := existing[0]
		if c.matches(old, content) {
			return Change{Name: name, RecordID: old.ID, Current: old}, nil
		}
		want := old.clone()
		want.Content, want.Proxied = content, false
		if c.cfg.TTL != 0 {
			want.TTL = c.cfg.TTL
		}
		ch := Change{Name: name, RecordID: old.ID, Previous: &old}
		rec, err := c.put(ctx, want)
		if err != nil {
			// The PUT may have landed before the failure; the returned
			// Change still restores the old record when reverted.
			return ch, fmt.Errorf("update DNS record %s (%s): %w", name, old.ID, err)
		}
		ch.Current = rec
		return ch, nil
	default:
		contents := make([]string, len(existing))
		for i, r := range existing {
			contents[i] = r.Content
		}
		return Change{}, retry.Permanent(fmt.Errorf("upsert DNS record %s: %w (%s); remove the extra ones first",
			name, ErrAmbiguous, strings.Join(contents, ", ")))
	}
}

// SetA makes name resolve to exactly ips, one unproxied A record each (the
// cluster endpoint over every control plane): records already right are left
// alone, records pointing elsewhere are updated to a missing address, and
// the rest are created. More records pointing elsewhere than addresses is
// refused (ErrAmbiguous) rather than deleting someone's records. Every
// Change returned, also on error, is safe to Revert, so undo puts the zone
// back exactly. With one address it does what UpsertA does.
//
// before, when not nil, is called right before each create or update goes
// out, with a Change that Revert undoes whatever becomes of the request: a
// caller registers its undo there, so that a run cancelled while the
// request is in flight (the record created, the answer never read) still
// removes the record. The Changes returned describe the same records with
// what the answers said.
func (c *Client) SetA(ctx context.Context, name string, ips []string, before func(Change)) ([]Change, error) {
	if before == nil {
		before = func(Change) {}
	}
	name = normalizeName(name)
	if name == "" {
		return nil, retry.Permanent(errors.New("set DNS records: empty name"))
	}
	want := make([]string, 0, len(ips))
	for _, ip := range ips {
		addr, err := netip.ParseAddr(strings.TrimSpace(ip))
		if err != nil || !addr.Is4() {
			return nil, retry.Permanent(fmt.Errorf("set DNS records %s: %q is not an IPv4 address", name, ip))
		}
		if !slices.Contains(want, addr.String()) {
			want = append(want, addr.String())
		}
	}
	existing, err := c.findA(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("set DNS records %s: %w", name, err)
	}
	var changes []Change
	var stale []Record
	var missing []string
	for _, r := range existing {
		if slices.Contains(want, r.Content) && c.matches(r, r.Content) {
			changes = append(changes, Change{Name: name, RecordID: r.ID, Current: r})
			continue
		}
		stale = append(stale, r)
	}
	for _, ip := range want {
		if !slices.ContainsFunc(changes, func(ch Change) bool { return ch.Current.Content == ip }) {
			missing = append(missing, ip)
		}
	}
	if len(stale) > len(missing) {
		contents := make([]string, len(stale))
		for i, r := range stale {
			contents[i] = r.Content
		}
		return nil, retry.Permanent(fmt.Errorf("set DNS records %s: %w: %s would be left pointing elsewhere; remove them first",
			name, ErrAmbiguous, strings.Join(contents, ", ")))
	}
	for i, ip := range missing {
		if i < len(stale) {
			old := stale[i]
			upd := old.clone()
			upd.Content, upd.Proxied = ip, false
			if c.cfg.TTL != 0 {
				upd.TTL = c.cfg.TTL
			}
			ch := Change{Name: name, RecordID: old.ID, Previous: &old, Current: upd}
			before(ch)
			rec, err := c.put(ctx, upd)
			if err != nil {
				return append(changes, ch), fmt.Errorf("update DNS record %s (%s): %w", name, old.ID, err)
			}
			ch.Current = rec
			changes = append(changes, ch)
			continue
		}
		before(maybeCreated(name, ip, existing))
		rec, err := c.create(ctx, name, ip, existing)
		if err != nil {
			// The create may have landed with its answer lost.
			return append(changes, maybeCreated(name, ip, existing)), fmt.Errorf("create DNS record %s → %s: %w", name, ip, err)
		}
		existing = append(existing, rec)
		changes = append(changes, Change{Name: name, RecordID: rec.ID, Created: true, Current: rec})
	}
	return changes, nil
}

func (c *Client) matches(r Record, content string) bool {
	return r.Content == content && !r.Proxied && (c.cfg.TTL == 0 || r.TTL == c.cfg.TTL)
}

// create POSTs the record. A create is not idempotent: when an attempt timed
// out or failed after the server may have acted, the retry first looks again
// and adopts a record that appeared since the first listing, so the Change
// still says "created" and Revert removes it.
func (c *Client) create(ctx context.Context, name, content string, before []Record) (Record, error) {
	ttl := c.cfg.TTL
	if ttl == 0 {
		ttl = 1
	}
	body := dns.ARecordParam{
		Name:    cf.F(name),
		Type:    cf.F(dns.ARecordTypeA),
		Content: cf.F(content),
		TTL:     cf.F(dns.TTL(ttl)),
		Proxied: cf.F(false),
	}
	if c.cfg.Comment != "" {
		body.Comment = cf.F(c.cfg.Comment)
	}
	var out Record
	attempt := 0
	err := c.call(ctx, func(ctx context.Context, opts ...option.RequestOption) error {
		attempt++
		if attempt > 1 {
			now, err := c.findA(ctx, name)
			if err != nil {
				return err
			}
			for _, r := range now {
				if r.Content == content && !containsID(before, r.ID) {
					out = r
					return nil
				}
			}
		}
		res, err := c.records.New(ctx, dns.RecordNewParams{ZoneID: cf.F(c.cfg.ZoneID), Body: body}, opts...)
		if err != nil {
			return err
		}
		out = c.fromResponse(res)
		return nil
	})
	return out, err
}

func containsID(rs []Record, id string) bool {
	return slices.ContainsFunc(rs, func(r Record) bool { return r.ID == id })
}

// put replaces the record with r (PUT is idempotent, so plain retries are safe).
func (c *Client) put(ctx context.Context, r Record) (Record, error) {
	body := dns.ARecordParam{
		Name:    cf.F(r.Name),
		Type:    cf.F(dns.ARecordTypeA),
		Content: cf.F(r.Content),
		TTL:     cf.F(dns.TTL(max(r.TTL, 1))),
		Proxied: cf.F(r.Proxied),
	}
	// PUT replaces the whole record: send everything we must keep.
	if r.Comment != "" {
		body.Comment = cf.F(r.Comment)
	}
	if len(r.Tags) > 0 {
		body.Tags = cf.F(slices.Clone(r.Tags))
	}
	if r.IPv4Only || r.IPv6Only {
		body.Settings = cf.F(dns.ARecordSettingsParam{IPV4Only: cf.F(r.IPv4Only), IPV6Only: cf.F(r.IPv6Only)})
	}
	var out Record
	err := c.call(ctx, func(ctx context.Context, opts ...option.RequestOption) error {
		res, err := c.records.Update(ctx, r.ID, dns.RecordUpdateParams{ZoneID: cf.F(c.cfg.ZoneID), Body: body}, opts...)
		if err != nil {
			return err
		}
		out = c.fromResponse(res)
		return nil
	})
	return out, err
}

// Revert undoes ch exactly: it deletes a record UpsertA created, puts back
// the previous state of one it updated, and does nothing otherwise. A record
// that is already gone counts as reverted, so undo can run twice. A create
// whose answer is unknown (no record ID) is undone by name and content: the
// record that create made is the one with both that was not there before.
func (c *Client) Revert(ctx context.Context, ch Change) error {
	switch {
	case ch.Created && ch.RecordID == "":
		recs, err := c.findA(ctx, ch.Name)
		if err != nil {
			return fmt.Errorf("revert DNS record %s → %s: %w", ch.Name, ch.Current.Content, err)
		}
		for _, r := range recs {
			if r.Content != ch.Current.Content || slices.Contains(ch.preexisting, r.ID) {
				continue
			}
			if err := c.DeleteRecord(ctx, r.ID); err != nil {
				return fmt.Errorf("revert DNS record %s → %s: %w", ch.Name, ch.Current.Content, err)
			}
		}
	case ch.Created:
		if err := c.DeleteRecord(ctx, ch.RecordID); err != nil {
			return fmt.Errorf("revert DNS record %s: %w", ch.Name, err)
		}
	case ch.Previous != nil:
		if _, err := c.put(ctx, *ch.Previous); err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("restore DNS record %s (%s) to %s: %w", ch.Name, ch.RecordID, ch.Previous.Content, err)
		}
	}
	return nil
}

// FindA lists every A record named exactly name, across all pages.
func (c *Client) FindA(ctx context.Context, name string) ([]Record, error) {
	name = normalizeName(name)
	recs, err := c.findA(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("list DNS records %s: %w", name, err)
	}
	return recs, nil
}

func (c *Client) findA(ctx context.Context, name string) ([]Record, error) {
	var out []Record
	for page := 1; ; page++ {
		var res *paginated
		err := c.call(ctx, func(ctx context.Context, opts ...option.RequestOption) error {
			var err error
			res, err = c.records.List(ctx, dns.RecordListParams{
				ZoneID:  cf.F(c.cfg.ZoneID),
				Name:    cf.F(dns.RecordListParamsName{Exact: cf.F(name)}),
				Type:    cf.F(dns.RecordListParamsTypeA),
				Page:    cf.F(float64(page)),
				PerPage: cf.F(float64(pageSize)),
			}, opts...)
			return err
		})
		if err != nil {
			return nil, err
		}
		for i := range res.Result {
			r := c.fromResponse(&res.Result[i])
			// Filter again: a server that ignored a filter must not make us
			// update or delete someone else's record.
			if r.Type == "A" && strings.EqualFold(r.Name, name) {
				out = append(out, r)
			}
		}
		n, total := len(res.Result), totalPages(res)
		if n == 0 || n < pageSize || (total > 0 && page >= total) {
			return out, nil
		}
	}
}

// totalPages reads result_info.total_pages, which the SDK's typed struct
// leaves among its extra fields; 0 when absent.
func totalPages(res *paginated) int {
	f, ok := res.ResultInfo.JSON.ExtraFields["total_pages"]
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(f.Raw()))
	if err != nil {
		return 0
	}
	return n
}

// DeleteRecord deletes the record with this ID; a missing record is success.
func (c *Client) DeleteRecord(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("delete DNS record: empty record ID")
	}
	err := c.call(ctx, func(ctx context.Context, opts ...option.RequestOption) error {
		_, err := c.records.Delete(ctx, id, dns.RecordDeleteParams{ZoneID: cf.F(c.cfg.ZoneID)}, opts...)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("delete DNS record %s: %w", id, err)
	}
	return nil
}

// Record fetches one record by ID; ErrNotFound when it does not exist.
func (c *Client) Record(ctx context.Context, id string) (Record, error) {
	var out Record
	err := c.call(ctx, func(ctx context.Context, opts ...option.RequestOption) error {
		res, err := c.records.Get(ctx, id, dns.RecordGetParams{ZoneID: cf.F(c.cfg.ZoneID)}, opts...)
		if err != nil {
			return err
		}
		out = c.fromResponse(res)
		return nil
	})
	if err != nil {
		return Record{}, fmt.Errorf("get DNS record %s: %w", id, err)
	}
	return out, nil
}

func (c *Client) fromResponse(res *dns.RecordResponse) Record {
	r := Record{
		ID: res.ID, ZoneID: c.cfg.ZoneID, Name: res.Name, Type: string(res.Type), Content: res.Content,
		TTL: int(res.TTL), Proxied: res.Proxied, Comment: res.Comment,
	}
	// The SDK ports union members into these interface fields with their
	// concrete types ([]RecordTags = []string, ARecordSettings); accept the
	// generic JSON shapes too in case that porting changes.
	switch tags := res.Tags.(type) {
	case []string:
		r.Tags = slices.Clone(tags)
	case []any:
		for _, t := range tags {
			if s, ok := t.(string); ok {
				r.Tags = append(r.Tags, s)
			}
		}
	}
	switch s := res.Settings.(type) {
	case dns.ARecordSettings:
		r.IPv4Only, r.IPv6Only = s.IPV4Only, s.IPV6Only
	case map[string]any:
		r.IPv4Only, _ = s["ipv4_only"].(bool)
		r.IPv6Only, _ = s["ipv6_only"].(bool)
	}
	if len(r.Tags) == 0 {
		r.Tags = nil
	}
	return r
}

func normalizeName(s string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
}
