package teleport

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/gravitational/teleport/api/types"
)

// Permission is one thing a provisioning run needs Teleport to let its
// identity do, with why.
type Permission struct {
	Resource string
	Verbs    []string
	Why      string
}

func (p Permission) String() string { return strings.Join(p.Verbs, "+") + " " + p.Resource }

// Needed is what a run does with Teleport. The auth service checks these
// resource rules (role allow/deny rules, resources × verbs) on every call:
// CreateToken needs create on token, GetToken read, DeleteToken delete, and
// listing or watching kube servers list and read on kube_server.
var Needed = []Permission{
	{types.KindToken, []string{types.VerbCreate}, "to mint the kube agent's join token"},
	{types.KindToken, []string{types.VerbRead}, "to see that the join token is still valid while the kube agent has not joined"},
	{types.KindToken, []string{types.VerbDelete}, "to remove the join token once used or renewed, or on cleanup"},
	{types.KindKubeServer, []string{types.VerbList, types.VerbRead}, "to see the cluster's kube agent register before the lockdown"},
}

// ErrPermission means the identity's roles do not allow something a run needs.
var ErrPermission = errors.New("permission missing")

// RolesAllow evaluates Teleport resource rules the way the auth service
// does for an unconditional check: a matching deny rule wins over any
// allow rule; "*" matches any resource or verb. Rules with a `where`
// clause depend on the resource, which does not exist yet: an allow rule
// with one is counted (the auth service decides later), a deny rule with
// one is not (it cannot be proven to apply).
func RolesAllow(roles []types.Role, resource, verb string) (ok bool, deniedBy string) {
	matches := func(r types.Rule) bool {
		return (slices.Contains(r.Resources, resource) || slices.Contains(r.Resources, types.Wildcard)) &&
			(slices.Contains(r.Verbs, verb) || slices.Contains(r.Verbs, types.Wildcard))
	}
	for _, role := range roles {
		for _, r := range role.GetRules(types.Deny) {
			if r.Where == "" && matches(r) {
				return false, role.GetName()
			}
		}
	}
	for _, role := range roles {
		for _, r := range role.GetRules(types.Allow) {
			if matches(r) {
				return true, ""
			}
		}
	}
	return false, ""
}

// CheckPermissions asks Teleport for the roles of the identity in use and
// checks that they allow everything in Needed, so that a missing permission
// is found before anything is ordered rather than after the server is
// billed. The error names every missing permission and the identity.
func (c *Client) CheckPermissions(ctx context.Context) error {
	var roles []types.Role
	err := c.retry.Do(ctx, func(ctx context.Context) error {
		return c.attempt(ctx, func(ctx context.Context) error {
			var err error
			roles, err = c.api.GetCurrentUserRoles(ctx)
			return classify(err)
		})
	})
	if err != nil {
		return fmt.Errorf("read the roles of Teleport identity %s: %w", c.identity, err)
	}
	names := make([]string, 0, len(roles))
	for _, r := range roles {
		names = append(names, r.GetName())
	}
	sort.Strings(names)
	var missing []string
	for _, p := range Needed {
		for _, verb := range p.Verbs {
			ok, deniedBy := RolesAllow(roles, p.Resource, verb)
			if ok {
				continue
			}
			why := "no role allows it"
			if deniedBy != "" {
				why = "role " + deniedBy + " denies it"
			}
			missing = append(missing, fmt.Sprintf("%s on %s %s (%s)", verb, p.Resource, p.Why, why))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("Teleport identity %s (roles %s) lacks: %s; give it a role with these rules (`tctl edit role/<name>`, spec.allow.rules): %w",
			c.identity, strings.Join(names, ", "), strings.Join(missing, "; "), ErrPermission)
	}
	return nil
}

// identityOf names the identity for messages; it never returns key
// material. user is what credentialsUser read ("" when nothing could be).
func identityOf(cfg Config, user string) string {
	profile := len(cfg.IdentityContent) == 0 && cfg.IdentityFile == ""
	switch {
	case user != "" && profile:
		return fmt.Sprintf("%q (tsh profile)", user)
	case user != "":
		return fmt.Sprintf("%q", user)
	case profile:
		return "of the tsh profile"
	case len(cfg.IdentityContent) == 0:
		return "from " + cfg.IdentityFile
	default:
		return "(unreadable identity)"
	}
}
