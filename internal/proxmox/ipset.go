package proxmox

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	pve "github.com/luthermonson/go-proxmox"
)

// The datacenter's IP sets. PVE stores an entry normalised (pve-firewall's
// clean_cidr and parse_ip_or_cidr: host bits masked, a single address
// without /32), and deletes only by that spelling, silently doing nothing
// for any other: so removal looks the entry up first and checks after.

func ipsetPath(name string) string { return "/cluster/firewall/ipset/" + url.PathEscape(name) }

// EnsureIPSet creates the datacenter IP set unless it exists.
func (c *Client) EnsureIPSet(ctx context.Context, name, comment string) error {
	var sets []*pve.FirewallIPSet
	if err := c.get(ctx, "/cluster/firewall/ipset", &sets); err != nil {
		return fmt.Errorf("list IP sets: %w", err)
	}
	for _, s := range sets {
		if s.Name == name {
			return nil
		}
	}
	err := c.post(ctx, "/cluster/firewall/ipset", &pve.FirewallIPSetCreationOption{Name: name, Comment: comment}, nil)
	var ae *APIError
	if errors.As(err, &ae) && strings.Contains(ae.Params["name"], "already exists") {
		return nil // a retried create whose first answer was lost
	}
	if err != nil {
		return fmt.Errorf("create IP set %s: %w", name, err)
	}
	return nil
}

// entry is one stored entry with the network it means.
type entry struct {
	stored string
	prefix netip.Prefix
}

func (c *Client) entries(ctx context.Context, name string) ([]entry, error) {
	var raw []*pve.FirewallIPSetEntry
	if err := c.get(ctx, ipsetPath(name), &raw); err != nil {
		return nil, fmt.Errorf("read IP set %s: %w", name, err)
	}
	out := make([]entry, 0, len(raw))
	for _, e := range raw {
		p, err := parseEntry(e.CIDR)
		if err != nil {
			continue // an alias: not a network this client adds
		}
		out = append(out, entry{stored: e.CIDR, prefix: p})
	}
	return out, nil
}

func parseEntry(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	return p.Masked(), err
}

// IPSet lists a set's entries as networks.
func (c *Client) IPSet(ctx context.Context, name string) ([]netip.Prefix, error) {
	es, err := c.entries(ctx, name)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, 0, len(es))
	for _, e := range es {
		out = append(out, e.prefix)
	}
	return out, nil
}

// AddToIPSet adds p to the set unless it is there.
func (c *Client) AddToIPSet(ctx context.Context, name string, p netip.Prefix, comment string) error {
	p = p.Masked()
	es, err := c.entries(ctx, name)
	if err != nil {
		return err
	}
	for _, e := range es {
		if e.prefix == p {
			return nil
		}
	}
	err = c.post(ctx, ipsetPath(name), &pve.FirewallIPSetEntryCreationOption{CIDR: p.String(), Comment: comment}, nil)
	var ae *APIError
	if errors.As(err, &ae) && strings.Contains(ae.Params["cidr"], "already exists") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("add %s to IP set %s: %w", p, name, err)
	}
	return nil
}

// RemoveFromIPSet removes p by the spelling PVE stored it under, then
// reads the set again: PVE answers a delete of an unknown spelling with
// success, so only the re-read proves the entry gone.
func (c *Client) RemoveFromIPSet(ctx context.Context, name string, p netip.Prefix) error {
	p = p.Masked()
	es, err := c.entries(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range es {
		if e.prefix != p {
			continue
		}
		if err := c.del(ctx, ipsetPath(name)+"/"+url.PathEscape(e.stored), nil); err != nil {
			return fmt.Errorf("remove %s from IP set %s: %w", p, name, err)
		}
	}
	left, err := c.IPSet(ctx, name)
	if err != nil {
		return err
	}
	for _, q := range left {
		if q == p {
			return fmt.Errorf("remove %s from IP set %s: still listed after the delete", p, name)
		}
	}
	return nil
}
