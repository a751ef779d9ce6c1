package proxmox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	pve "github.com/luthermonson/go-proxmox"
)

func parseErrors(body []byte) map[string]string {
	var env struct {
		Errors map[string]string `json:"errors"`
	}
	if json.Unmarshal(body, &env) != nil {
		return nil
	}
	return env.Errors
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func userPath(userID string) string { return "/access/users/" + url.PathEscape(userID) }

// EnsureUser creates the user unless it exists (a retried create after a
// lost answer must not fail the run).
func (c *Client) EnsureUser(ctx context.Context, userID, comment string) error {
	var u pve.User
	err := c.get(ctx, userPath(userID), &u)
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("look up Proxmox user %s: %w", userID, err)
	}
	if err := c.post(ctx, "/access/users", &pve.NewUser{UserID: userID, Comment: comment, Enable: true}, nil); err != nil {
		var ae *APIError
		if errors.As(err, &ae) && strings.Contains(ae.Message, "already exists") {
			return nil
		}
		return fmt.Errorf("create Proxmox user %s: %w", userID, err)
	}
	return nil
}

// DeleteUser removes the user with its tokens and ACL entries.
func (c *Client) DeleteUser(ctx context.Context, userID string) error {
	if err := c.del(ctx, userPath(userID), nil); err != nil {
		return fmt.Errorf("delete Proxmox user %s: %w", userID, err)
	}
	return nil
}

// Grant gives userID role on path (propagating), like `pveum aclmod`.
func (c *Client) Grant(ctx context.Context, path, role, userID string) error {
	opts := pve.ACLOptions{Path: path, Roles: role, Users: userID, Propagate: true}
	if err := c.put(ctx, "/access/acl", &opts, nil); err != nil {
		return fmt.Errorf("grant %s on %s to %s: %w", role, path, userID, err)
	}
	return nil
}

// CreateToken creates an API token without privilege separation.
func (c *Client) CreateToken(ctx context.Context, userID, tokenID, comment string) (string, error) {
	var out pve.NewAPIToken
	path := userPath(userID) + "/token/" + url.PathEscape(tokenID)
	err := c.post(ctx, path, pve.Token{Comment: comment, Privsep: false}, &out)
	if err != nil {
		return "", fmt.Errorf("create API token %s!%s: %w", userID, tokenID, err)
	}
	if out.Value == "" {
		return "", fmt.Errorf("create API token %s!%s: the answer holds no secret", userID, tokenID)
	}
	return out.Value, nil
}

// DeleteToken removes one API token.
func (c *Client) DeleteToken(ctx context.Context, userID, tokenID string) error {
	if err := c.del(ctx, userPath(userID)+"/token/"+url.PathEscape(tokenID), nil); err != nil {
		return fmt.Errorf("delete API token %s!%s: %w", userID, tokenID, err)
	}
	return nil
}

// Tokens lists a user's token names.
func (c *Client) Tokens(ctx context.Context, userID string) ([]string, error) {
	var toks pve.Tokens
	if err := c.get(ctx, userPath(userID)+"/token", &toks); err != nil {
		return nil, fmt.Errorf("list API tokens of %s: %w", userID, err)
	}
	out := make([]string, 0, len(toks))
	for _, t := range toks {
		out = append(out, t.TokenID)
	}
	sort.Strings(out)
	return out, nil
}

// SetPassword changes a user's password (PUT /access/password).
func (c *Client) SetPassword(ctx context.Context, userID, password, confirm string) error {
	body := map[string]string{"userid": userID, "password": password}
	if confirm != "" {
		body["confirmation-password"] = confirm
	}
	if err := c.put(ctx, "/access/password", body, nil); err != nil {
		return fmt.Errorf("change the password of %s: %w", userID, err)
	}
	return nil
}

// CreateBridge adds a Linux bridge without ports (pending until applied).
// An existing interface of the same name and address counts as done.
func (c *Client) CreateBridge(ctx context.Context, b Bridge) error {
	cur, err := c.Interface(ctx, b.Iface)
	if err == nil {
		if cur.Type == "bridge" && cur.CIDR == b.CIDR {
			return nil
		}
		return fmt.Errorf("create bridge %s: interface exists as %s %s", b.Iface, cur.Type, cur.CIDR)
	}
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	body := &pve.NodeNetwork{Iface: b.Iface, Type: "bridge", CIDR: b.CIDR, Autostart: 1, Comments: b.Comment}
	if err := c.post(ctx, "/nodes/"+c.node()+"/network", body, nil); err != nil {
		return fmt.Errorf("create bridge %s: %w", b.Iface, err)
	}
	return nil
}

// DeleteInterface marks an interface for removal (pending until applied).
func (c *Client) DeleteInterface(ctx context.Context, iface string) error {
	if err := c.del(ctx, "/nodes/"+c.node()+"/network/"+url.PathEscape(iface), nil); err != nil {
		return fmt.Errorf("delete interface %s: %w", iface, err)
	}
	return nil
}

// ApplyNetwork reloads the node's network with the pending changes.
func (c *Client) ApplyNetwork(ctx context.Context) error {
	var upid pve.UPID
	if err := c.put(ctx, "/nodes/"+c.node()+"/network", nil, &upid); err != nil {
		return fmt.Errorf("apply network changes: %w", err)
	}
	if err := c.WaitTask(ctx, string(upid)); err != nil {
		return fmt.Errorf("apply network changes: %w", err)
	}
	return nil
}

// Interface reads one interface (the pending configuration, as PVE shows it).
func (c *Client) Interface(ctx context.Context, iface string) (Interface, error) {
	var nw pve.NodeNetwork
	if err := c.get(ctx, "/nodes/"+c.node()+"/network/"+url.PathEscape(iface), &nw); err != nil {
		return Interface{}, fmt.Errorf("read interface %s: %w", iface, err)
	}
	return Interface{Iface: iface, Type: nw.Type, CIDR: nw.CIDR, Active: fmt.Sprint(nw.Active) == "1"}, nil
}

// FirewallOptions reads the firewall switches of a scope.
func (c *Client) FirewallOptions(ctx context.Context, s Scope) (FirewallOptions, error) {
	var o struct {
		Enable   pve.IntOrBool `json:"enable"`
		PolicyIn string        `json:"policy_in"`
	}
	if err := c.get(ctx, s.base()+"/options", &o); err != nil {
		return FirewallOptions{}, fmt.Errorf("read %s firewall options: %w", s, err)
	}
	return FirewallOptions{Enable: bool(o.Enable), PolicyIn: o.PolicyIn}, nil
}

// SetFirewallOptions sets enable (and, for the datacenter, policy_in).
func (c *Client) SetFirewallOptions(ctx context.Context, s Scope, o FirewallOptions) error {
	body := map[string]any{"enable": boolInt(o.Enable)}
	if o.PolicyIn != "" {
		body["policy_in"] = o.PolicyIn
	}
	if err := c.put(ctx, s.base()+"/options", body, nil); err != nil {
		return fmt.Errorf("set %s firewall options: %w", s, err)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FirewallRules lists the rules of a scope in order.
func (c *Client) FirewallRules(ctx context.Context, s Scope) ([]Rule, error) {
	var raw []*pve.FirewallRule
	if err := c.get(ctx, s.base()+"/rules", &raw); err != nil {
		return nil, fmt.Errorf("list %s firewall rules: %w", s, err)
	}
	out := make([]Rule, 0, len(raw))
	for _, r := range raw {
		out = append(out, Rule{Pos: r.Pos, Type: r.Type, Action: r.Action, Source: r.Source, Dport: r.Dport, Proto: r.Proto,
			Iface: r.Iface, Comment: r.Comment, Enable: r.Enable > 0})
	}
	return out, nil
}

// AddRule adds r at the top unless a rule with the same comment exists.
func (c *Client) AddRule(ctx context.Context, s Scope, r Rule) error {
	if r.Comment == "" {
		return errors.New("add firewall rule: a comment is required to find the rule again")
	}
	rules, err := c.FirewallRules(ctx, s)
	if err != nil {
		return err
	}
	for _, have := range rules {
		if have.Comment == r.Comment {
			return nil
		}
	}
	body := &pve.FirewallRule{Type: r.Type, Action: r.Action, Source: r.Source, Dport: r.Dport, Proto: r.Proto,
		Iface: r.Iface, Comment: r.Comment, Enable: boolInt(r.Enable)}
	if err := c.post(ctx, s.base()+"/rules", body, nil); err != nil {
		return fmt.Errorf("add %s firewall rule %q: %w", s, r.Comment, err)
	}
	return nil
}

// DeleteRule removes the rule with this comment. Positions shift with
// every change, so the position is looked up and sent with the rules'
// digest: a concurrent edit makes PVE refuse instead of deleting the wrong rule.
func (c *Client) DeleteRule(ctx context.Context, s Scope, comment string) error {
	var raw []struct {
		Pos     int    `json:"pos"`
		Comment string `json:"comment"`
		Digest  string `json:"digest"`
	}
	if err := c.get(ctx, s.base()+"/rules", &raw); err != nil {
		return fmt.Errorf("list %s firewall rules: %w", s, err)
	}
	for _, r := range raw {
		if r.Comment != comment {
			continue
		}
		path := fmt.Sprintf("%s/rules/%d?digest=%s", s.base(), r.Pos, url.QueryEscape(r.Digest))
		if err := c.del(ctx, path, nil); err != nil {
			return fmt.Errorf("delete %s firewall rule %q: %w", s, comment, err)
		}
		return nil
	}
	return fmt.Errorf("delete %s firewall rule %q: %w", s, comment, ErrNotFound)
}

// StorageContent lists the content types a storage accepts.
func (c *Client) StorageContent(ctx context.Context, storage string) ([]string, error) {
	var st struct {
		Content string `json:"content"`
	}
	if err := c.get(ctx, "/storage/"+url.PathEscape(storage), &st); err != nil {
		return nil, fmt.Errorf("read storage %s: %w", storage, err)
	}
	out := strings.Split(st.Content, ",")
	sort.Strings(out)
	return out, nil
}

// SetStorageContent sets the content types a storage accepts. (go-proxmox's
// UpdateClusterStorage expects a task ID, but PVE answers this call with
// the storage's ID and type, so the call is made directly.)
func (c *Client) SetStorageContent(ctx context.Context, storage string, content []string) error {
	var out map[string]any
	body := map[string]string{"content": strings.Join(content, ",")}
	if err := c.put(ctx, "/storage/"+url.PathEscape(storage), body, &out); err != nil {
		return fmt.Errorf("set content types of storage %s: %w", storage, err)
	}
	return nil
}

// Reachable makes one unauthenticated-or-not request and reports whether
// anything answered before ctx ended.
func (c *Client) Reachable(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	var v pve.Version
	err := unwrapAPI(c.c.Get(ctx, "/version", &v))
	var ae *APIError
	return err == nil || errors.As(err, &ae)
}
