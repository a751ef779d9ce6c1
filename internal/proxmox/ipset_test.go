package proxmox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/proxmox"
	pveemu "github.com/rawkode/rawkode-cloud/internal/proxmox/emulator"
)

// The operator's address goes into a datacenter IP set and out again: PVE
// stores a /32 as the bare address and silently ignores a delete of any
// other spelling, so only a client that removes by the stored spelling
// (and checks) closes what the set opens.
func TestIPSetEntryComesAndGoes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e := start(t, pveemu.Options{})
	c, err := rootClient(t, ctx, e, rootPassword)
	if err != nil {
		t.Fatal(err)
	}
	op := netip.MustParseAddr("198.51.100.7")
	if _, err := c.IPSet(ctx, "operator"); !errors.Is(err, proxmox.ErrNotFound) {
		t.Fatalf("reading a missing set: %v, want ErrNotFound", err)
	}
	if err := c.AddToIPSet(ctx, "operator", netip.PrefixFrom(op, 32), "x"); err == nil || !strings.Contains(err.Error(), "no such IPSet") {
		t.Fatalf("adding to a missing set: %v", err)
	}
	for range 2 { // the second is a no-op
		if err := c.EnsureIPSet(ctx, "operator", "operator forwards"); err != nil {
			t.Fatal(err)
		}
		if err := c.AddToIPSet(ctx, "operator", netip.PrefixFrom(op, 32), "temporary"); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.Snapshot().IPSets["operator"]; len(got) != 1 || got[0] != "198.51.100.7" {
		t.Fatalf("stored entries %v, want the bare address once", got)
	}
	if e.IPSetAdmits("operator", op) {
		t.Fatal("the set admits the operator while the datacenter firewall is off: pve-firewall only makes its sets when it is on")
	}
	if err := c.SetFirewallOptions(ctx, proxmox.Scope{}, proxmox.FirewallOptions{Enable: true, PolicyIn: "ACCEPT"}); err != nil {
		t.Fatal(err)
	}
	if !e.IPSetAdmits("operator", op) || e.IPSetAdmits("operator", netip.MustParseAddr("198.51.100.8")) {
		t.Fatal("the set must admit exactly the operator")
	}
	// The raw API's trap: deleting the /32 spelling succeeds and removes nothing.
	if err := deleteRaw(ctx, e, "operator", "198.51.100.7/32"); err != nil {
		t.Fatal(err)
	}
	if !e.IPSetAdmits("operator", op) {
		t.Fatal("deleting the /32 spelling removed the entry; PVE keeps it")
	}
	if err := c.RemoveFromIPSet(ctx, "operator", netip.PrefixFrom(op, 32)); err != nil {
		t.Fatal(err)
	}
	if e.IPSetAdmits("operator", op) {
		t.Fatal("the operator is still admitted after RemoveFromIPSet")
	}
	if err := c.RemoveFromIPSet(ctx, "operator", netip.PrefixFrom(op, 32)); err != nil {
		t.Fatalf("removing what is gone must be a no-op: %v", err)
	}
	if err := c.RemoveFromIPSet(ctx, "nothere", netip.PrefixFrom(op, 32)); err != nil {
		t.Fatalf("removing from a missing set must be a no-op: %v", err)
	}
}

// deleteRaw sends DELETE /cluster/firewall/ipset/{name}/{cidr} as root, as
// a hand-written client would.
func deleteRaw(ctx context.Context, e *pveemu.Emulator, name, cidr string) error {
	hc := e.HTTPClient()
	form := url.Values{"username": {"root@pam"}, "password": {rootPassword}}
	res, err := hc.PostForm(e.URL()+"/access/ticket", form)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var tk struct {
		Data struct {
			Ticket string `json:"ticket"`
			CSRF   string `json:"CSRFPreventionToken"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tk); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, e.URL()+"/cluster/firewall/ipset/"+name+"/"+url.PathEscape(cidr), nil)
	if err != nil {
		return err
	}
	req.AddCookie(&http.Cookie{Name: "PVEAuthCookie", Value: tk.Data.Ticket})
	req.Header.Set("CSRFPreventionToken", tk.Data.CSRF)
	res2, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res2.Body.Close()
	if res2.StatusCode != http.StatusOK {
		return fmt.Errorf("DELETE: %s", res2.Status)
	}
	return nil
}
