package proxmoxvms_test

import (
	"context"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rawkode/rawkode-cloud/internal/proxmox"
	pveemu "github.com/rawkode/rawkode-cloud/internal/proxmox/emulator"
	"github.com/rawkode/rawkode-cloud/internal/proxmoxvms"
	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/teleportvm"
)

func TestFetchTeleportIdentityWaitsReadsAndRemoves(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	e, err := pveemu.New(pveemu.Options{RootPasswordHash: string(h)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	c, err := proxmox.New(ctx, proxmox.Config{URL: e.URL(), Node: e.Node(), Username: "root@pam", Password: "pw",
		HTTPClient: e.HTTPClient(), TaskPoll: 5 * time.Millisecond, Retry: retry.Policy{Initial: time.Millisecond, MaxAttempts: 3}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetStorageContent(ctx, "local", []string{"import", "iso"}); err != nil {
		t.Fatal(err)
	}
	if err := c.DownloadURL(ctx, "local", "import", "debian.qcow2", "https://example.com/debian.qcow2"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateVM(ctx, proxmox.VMSpec{VMID: 101, Name: "teleport", Cores: 2, MemoryMiB: 2048, Bridge: "vmbr0",
		MAC: "02:00:00:00:00:02", DiskStorage: "local-zfs", ImportFrom: "local:import/debian.qcow2", DiskGiB: 20}); err != nil {
		t.Fatal(err)
	}
	if err := c.StartVM(ctx, 101); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	errs := make(chan error, 1)
	go func() {
		id, err := proxmoxvms.FetchTeleportIdentity(ctx, c, 101, 5*time.Millisecond)
		errs <- err
		got <- id
	}()
	// First boot finishes while the CLI waits.
	e.WriteGuestFile(101, teleportvm.IdentityPath, []byte("identity-content"))
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if id := <-got; string(id) != "identity-content" {
		t.Errorf("identity %q", id)
	}
	if _, ok := e.GuestFile(101, teleportvm.IdentityPath); ok {
		t.Error("the identity was left in the VM")
	}
}
