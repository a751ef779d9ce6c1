package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"slices"

	cf "github.com/cloudflare/cloudflare-go/v6"
	"github.com/cloudflare/cloudflare-go/v6/option"
	"github.com/cloudflare/cloudflare-go/v6/user"
	"github.com/cloudflare/cloudflare-go/v6/zones"
)

// PermissionDNSEdit is how the zone details name the right to change DNS
// records ("Zone / DNS / Edit" in the dashboard's token editor).
const PermissionDNSEdit = "#dns_records:edit"

// ErrPermission means the API token may not do what a run needs.
var ErrPermission = errors.New("permission missing")

// CheckAccess proves, without changing anything, that the token is active
// (GET /user/tokens/verify) and may edit DNS records in the zone: the zone's
// details list the permissions the caller holds in it (GET /zones/{id},
// "permissions"). A token that cannot be verified or lacks the permission
// is an error naming it; a zone that lists no permissions at all proves
// nothing either way, and is reported as ok=false without an error.
func (c *Client) CheckAccess(ctx context.Context) (proven bool, err error) {
	var tok *user.TokenVerifyResponse
	err = c.call(ctx, func(ctx context.Context, opts ...option.RequestOption) error {
		var err error
		tok, err = c.api.User.Tokens.Verify(ctx, opts...)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("verify the Cloudflare API token: %w", err)
	}
	if tok.Status != user.TokenVerifyResponseStatusActive {
		return false, fmt.Errorf("the Cloudflare API token %s is %s, not active: %w", tok.ID, tok.Status, ErrPermission)
	}
	var zone *zones.Zone
	err = c.call(ctx, func(ctx context.Context, opts ...option.RequestOption) error {
		var err error
		zone, err = c.api.Zones.Get(ctx, zones.ZoneGetParams{ZoneID: cf.F(c.cfg.ZoneID)}, opts...)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("read Cloudflare zone %s with token %s: %w", c.cfg.ZoneID, tok.ID, err)
	}
	if len(zone.Permissions) == 0 {
		return false, nil
	}
	if !slices.Contains(zone.Permissions, PermissionDNSEdit) {
		return false, fmt.Errorf("the Cloudflare API token %s may not edit DNS records in zone %s (%s; it holds %v): give it Zone / DNS / Edit for the zone: %w",
			tok.ID, zone.Name, PermissionDNSEdit, zone.Permissions, ErrPermission)
	}
	return true, nil
}

// ZoneName reads the configured zone's name (GET /zones/{id}): records
// whose name does not end in it would be created under it, the zone's name
// appended, as Cloudflare completes relative names.
func (c *Client) ZoneName(ctx context.Context) (string, error) {
	var zone *zones.Zone
	err := c.call(ctx, func(ctx context.Context, opts ...option.RequestOption) error {
		var err error
		zone, err = c.api.Zones.Get(ctx, zones.ZoneGetParams{ZoneID: cf.F(c.cfg.ZoneID)}, opts...)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read Cloudflare zone %s: %w", c.cfg.ZoneID, err)
	}
	return normalizeName(zone.Name), nil
}
