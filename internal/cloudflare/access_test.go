package cloudflare

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

func TestCheckAccess(t *testing.T) {
	t.Parallel()
	emu, c := start(t, EmulatorOptions{}, nil)
	proven, err := c.CheckAccess(ctxFor(t, 5*time.Second))
	if err != nil || !proven {
		t.Fatalf("CheckAccess with a DNS-edit token = %v, %v; want proven", proven, err)
	}

	emu.Faults().Set(FaultPermissions, emulator.Fault{Kind: emulator.Deny})
	_, err = c.CheckAccess(ctxFor(t, 5*time.Second))
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), PermissionDNSEdit) {
		t.Fatalf("CheckAccess with a read-only token = %v, want ErrPermission naming %s", err, PermissionDNSEdit)
	}
	noLeak(t, err)
	// What the check predicted is what the API enforces.
	if _, err := c.UpsertA(ctxFor(t, 5*time.Second), "www."+DefaultZoneName, "192.0.2.1"); err == nil || !strings.Contains(err.Error(), "10000") {
		t.Fatalf("UpsertA with a read-only token = %v, want 403 code 10000", err)
	}

	_, bad := start(t, EmulatorOptions{}, func(c *Config) { c.APIToken = "not-the-token" })
	if _, err := bad.CheckAccess(ctxFor(t, 5*time.Second)); err == nil || !strings.Contains(err.Error(), "verify the Cloudflare API token") {
		t.Fatalf("CheckAccess with a wrong token = %v", err)
	}
}
