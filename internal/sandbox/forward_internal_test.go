package sandbox

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rawkode/rawkode-cloud/internal/proxmox"
	pveemu "github.com/rawkode/rawkode-cloud/internal/proxmox/emulator"
	"github.com/rawkode/rawkode-cloud/internal/proxmoxhost"
	"github.com/rawkode/rawkode-cloud/internal/retry"
)

// A host's operator-only forward reaches its VM only while the operator's
// address is in the IP set the forward matches on, with the datacenter
// firewall on (pve-firewall makes the kernel set then): a CLI that forgets
// the entry sees its SYN dropped, as on a real host.
func TestOperatorForwardFollowsTheIPSet(t *testing.T) {
	t.Parallel()
	s, err := Start(Options{Speed: 400})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	e, err := pveemu.New(pveemu.Options{RootPasswordHash: string(hash), Operator: OperatorIP})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const hostIP = "203.0.113.10"
	s.mu.Lock()
	s.hosts[hostIP] = e
	s.hostForwards[hostIP] = hostForwarding{ipset: "operator", forwards: []proxmoxhost.OperatorForward{
		{Port: 50000, To: netip.MustParseAddrPort("10.10.0.10:50000")}}}
	s.mu.Unlock()

	dial := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		c, ok, err := s.forwarded(ctx, hostIP+":50000")
		if !ok {
			t.Fatal("port 50000 is a forward of this host")
		}
		if c != nil {
			c.Close()
		}
		return err
	}
	if err := dial(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("without the IP set: %v, want the SYN dropped (deadline)", err)
	}
	if _, ok, _ := s.forwarded(context.Background(), hostIP+":50009"); ok {
		t.Fatal("a port the user data did not forward was forwarded")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := proxmox.New(ctx, proxmox.Config{URL: e.URL(), Node: e.Node(), Username: "root@pam", Password: "pw",
		HTTPClient: e.HTTPClient(), Retry: retry.Policy{Initial: time.Millisecond, MaxAttempts: 2}})
	if err != nil {
		t.Fatal(err)
	}
	op := netip.PrefixFrom(OperatorIP, 32)
	if err := c.EnsureIPSet(ctx, "operator", ""); err != nil {
		t.Fatal(err)
	}
	if err := c.AddToIPSet(ctx, "operator", op, ""); err != nil {
		t.Fatal(err)
	}
	if err := dial(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("datacenter firewall off: %v, want dropped (pve-firewall makes no set)", err)
	}
	if err := c.SetFirewallOptions(ctx, proxmox.Scope{}, proxmox.FirewallOptions{Enable: true, PolicyIn: "ACCEPT"}); err != nil {
		t.Fatal(err)
	}
	// Admitted: the packet reaches 10.10.0.10, where no VM listens yet.
	if err := dial(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("with the operator in the set: %v, want the VM's refusal", err)
	}
	if err := c.RemoveFromIPSet(ctx, "operator", op); err != nil {
		t.Fatal(err)
	}
	if err := dial(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after the removal: %v, want dropped", err)
	}
}
