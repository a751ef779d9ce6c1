package proxmox_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/proxmox"
	pveemu "github.com/rawkode/rawkode-cloud/internal/proxmox/emulator"
	"github.com/rawkode/rawkode-cloud/internal/retry"
)

const rootPassword = "correct horse battery staple"

func start(t *testing.T, opts pveemu.Options) *pveemu.Emulator {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(rootPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if opts.RootPasswordHash == "" {
		opts.RootPasswordHash = string(h)
	}
	e, err := pveemu.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func rootClient(t *testing.T, ctx context.Context, e *pveemu.Emulator, password string) (*proxmox.Client, error) {
	return proxmox.New(ctx, proxmox.Config{URL: e.URL(), Node: e.Node(), Username: "root@pam", Password: password,
		HTTPClient: e.HTTPClient(), TaskPoll: 5 * time.Millisecond, RequestTimeout: 2 * time.Second,
		Retry: retry.Policy{Initial: time.Millisecond, MaxAttempts: 3}})
}

func tokenClient(e *pveemu.Emulator, id, secret string) (*proxmox.Client, error) {
	return proxmox.New(context.Background(), proxmox.Config{URL: e.URL(), Node: e.Node(), TokenID: id, TokenSecret: secret,
		HTTPClient: e.HTTPClient(), TaskPoll: 5 * time.Millisecond, RequestTimeout: 2 * time.Second,
		Retry: retry.Policy{Initial: time.Millisecond, MaxAttempts: 3}})
}

func TestHostSetupThroughTheAPI(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := start(t, pveemu.Options{Delays: pveemu.Delays{NetworkApply: 20 * time.Millisecond}})

	if _, err := rootClient(t, ctx, e, "wrong"); err == nil || !strings.Contains(err.Error(), "authentication failure") {
		t.Fatalf("wrong password: got %v, want authentication failure", err)
	}
	root, err := rootClient(t, ctx, e, rootPassword)
	if err != nil {
		t.Fatal(err)
	}
	v, err := root.Version(ctx)
	if err != nil || v.Version != pveemu.DefaultVersion {
		t.Fatalf("version: %+v %v", v, err)
	}
	const user = "rawkode-cloud@pve"
	if err := root.EnsureUser(ctx, user, "automation"); err != nil {
		t.Fatal(err)
	}
	if err := root.EnsureUser(ctx, user, "automation"); err != nil {
		t.Fatalf("second EnsureUser must be a no-op: %v", err)
	}

	// PVEAdmin is not enough: network changes need Sys.Modify.
	if err := root.Grant(ctx, "/", "PVEAdmin", user); err != nil {
		t.Fatal(err)
	}
	secret, err := root.CreateToken(ctx, user, "provision", "test")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenClient(e, user+"!provision", secret)
	if err != nil {
		t.Fatal(err)
	}
	err = tok.CreateBridge(ctx, proxmox.Bridge{Iface: "vmbr1", CIDR: "10.10.0.1/24"})
	if err == nil || !strings.Contains(err.Error(), "Sys.Modify") {
		t.Fatalf("bridge with PVEAdmin: got %v, want a Sys.Modify refusal", err)
	}
	if err := root.Grant(ctx, "/", "Administrator", user); err != nil {
		t.Fatal(err)
	}
	if err := tok.CreateBridge(ctx, proxmox.Bridge{Iface: "vmbr1", CIDR: "10.10.0.1/24", Comment: "internal"}); err != nil {
		t.Fatal(err)
	}
	if s := e.Snapshot(); !s.PendingNetwork || len(s.Bridges) != 1 {
		t.Fatalf("before apply: want vmbr1 pending and only vmbr0 applied, got %+v", s)
	}
	if err := tok.ApplyNetwork(ctx); err != nil {
		t.Fatal(err)
	}
	if s := e.Snapshot(); s.PendingNetwork || len(s.Bridges) != 2 || s.Bridges[1] != (pveemu.Bridge{Iface: "vmbr1", CIDR: "10.10.0.1/24"}) {
		t.Fatalf("after apply: %+v", s)
	}

	// Firewall without lockout: the operator rule exists before DROP.
	operator := netip.MustParseAddr("198.51.100.7")
	cluster := proxmox.Scope{}
	rule := proxmox.Rule{Type: "in", Action: "ACCEPT", Source: operator.String() + "/32", Dport: "8006", Proto: "tcp",
		Comment: "rawkode-cloud temporary: operator API access", Enable: true}
	if err := tok.AddRule(ctx, cluster, rule); err != nil {
		t.Fatal(err)
	}
	if err := tok.AddRule(ctx, cluster, rule); err != nil {
		t.Fatal(err)
	}
	if err := tok.AddRule(ctx, proxmox.Scope{Node: e.Node()}, proxmox.Rule{Type: "in", Action: "ACCEPT", Iface: "vmbr1",
		Comment: "rawkode-cloud: internal network", Enable: true}); err != nil {
		t.Fatal(err)
	}
	if err := tok.DeleteRule(ctx, cluster, "no such rule"); !errors.Is(err, proxmox.ErrNotFound) {
		t.Fatalf("deleting a missing rule: got %v, want ErrNotFound", err)
	}
	if err := tok.SetFirewallOptions(ctx, cluster, proxmox.FirewallOptions{Enable: true, PolicyIn: "DROP"}); err != nil {
		t.Fatal(err)
	}
	rules, err := tok.FirewallRules(ctx, cluster)
	if err != nil || len(rules) != 1 {
		t.Fatalf("rules: %+v %v (a retried add must not duplicate)", rules, err)
	}
	if !e.Reachable(operator, 8006) || e.Reachable(netip.MustParseAddr("192.0.2.99"), 8006) {
		t.Fatal("8006 must be open to the operator only")
	}
	if err := tok.DeleteRule(ctx, cluster, rule.Comment); err != nil {
		t.Fatal(err)
	}
	if e.Reachable(operator, 8006) {
		t.Fatal("8006 still open after lockdown")
	}
	// Locked out for real: the API drops the operator's packets now.
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if _, err := tok.Version(short); err == nil {
		t.Fatal("the API still answers the operator after lockdown")
	}
}

func TestStorageAndPasswordRotation(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := start(t, pveemu.Options{})
	root, err := rootClient(t, ctx, e, rootPassword)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"backup", "images", "import", "iso", "snippets", "vztmpl"}
	if err := root.SetStorageContent(ctx, "local", want); err != nil {
		t.Fatal(err)
	}
	got, err := root.StorageContent(ctx, "local")
	if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("content: %v %v", got, err)
	}
	err = root.SetStorageContent(ctx, "local-lvm", want)
	if !errors.Is(err, proxmox.ErrNotFound) {
		t.Fatalf("local-lvm: got %v, want ErrNotFound (this host has none)", err)
	}
	if err := root.SetPassword(ctx, "root@pam", "a-new-break-glass-password", rootPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := rootClient(t, ctx, e, rootPassword); err == nil {
		t.Fatal("the old root password still logs in")
	}
	if _, err := rootClient(t, ctx, e, "a-new-break-glass-password"); err != nil {
		t.Fatal(err)
	}
}

func TestImportContentNeeds84(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e := start(t, pveemu.Options{Version: "8.3.2"})
	root, err := rootClient(t, ctx, e, rootPassword)
	if err != nil {
		t.Fatal(err)
	}
	err = root.SetStorageContent(ctx, "local", []string{"iso", "import"})
	var ae *proxmox.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.Params["content"], "import") {
		t.Fatalf("got %v, want a 400 naming the import content type", err)
	}
}

func TestFaultsAreRetriedOrReported(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind    emulator.Kind
		times   int
		wantErr bool
	}{
		{emulator.Unavailable, 2, false},
		{emulator.RateLimit, 1, false},
		{emulator.Error, 0, true},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			f := emulator.NewFaults()
			e := start(t, pveemu.Options{Faults: f})
			root, err := rootClient(t, ctx, e, rootPassword)
			if err != nil {
				t.Fatal(err)
			}
			f.Set(pveemu.FaultFirewall, emulator.Fault{Kind: tc.kind, Times: tc.times})
			err = root.SetFirewallOptions(ctx, proxmox.Scope{}, proxmox.FirewallOptions{Enable: false})
			if (err != nil) != tc.wantErr {
				t.Fatalf("got %v, want error=%v", err, tc.wantErr)
			}
		})
	}
}

func TestNetworkApplyThatNeverEndsTimesOut(t *testing.T) {
	t.Parallel()
	f := emulator.NewFaults()
	e := start(t, pveemu.Options{Faults: f})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	root, err := rootClient(t, ctx, e, rootPassword)
	if err != nil {
		t.Fatal(err)
	}
	f.Set(pveemu.FaultNetwork, emulator.Fault{Kind: emulator.Never})
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if err := root.ApplyNetwork(short); err == nil || !strings.Contains(err.Error(), "running") {
		t.Fatalf("got %v, want a timeout naming the running task", err)
	}
}
