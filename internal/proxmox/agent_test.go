package proxmox_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/proxmox"
	pveemu "github.com/rawkode/rawkode-cloud/internal/proxmox/emulator"
)

// The guest agent is how the CLI fetches what a VM's first boot left for it
// (the Teleport provisioner identity) and removes it, without SSH.
func TestGuestAgentReadAndRemove(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := start(t, pveemu.Options{})
	c, err := rootClient(t, ctx, e, rootPassword)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetStorageContent(ctx, "local", []string{"import", "iso"}); err != nil {
		t.Fatal(err)
	}
	if err := c.DownloadURL(ctx, "local", "import", "debian-12.qcow2", "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateVM(ctx, proxmox.VMSpec{VMID: 101, Name: "teleport", Cores: 2, MemoryMiB: 2048, CPU: "host", Bridge: "vmbr0",
		MAC: "02:b9:22:60:5d:2b", DiskStorage: "local-zfs", ImportFrom: "local:import/debian-12.qcow2", DiskGiB: 20}); err != nil {
		t.Fatal(err)
	}
	const path = "/run/rawkode-cloud/provisioner.identity"
	if _, err := c.GuestReadFile(ctx, 101, path); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("agent of a stopped VM: %v", err)
	}
	if err := c.StartVM(ctx, 101); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GuestReadFile(ctx, 101, path); err == nil || !strings.Contains(err.Error(), "No such file or directory") {
		t.Errorf("file first boot has not written yet: %v", err)
	}
	e.WriteGuestFile(101, path, []byte("identity\n"))
	got, err := c.GuestReadFile(ctx, 101, path)
	if err != nil || string(got) != "identity\n" {
		t.Fatalf("read %q, %v", got, err)
	}
	if err := c.GuestExec(ctx, 101, "shred", "-u", path); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.GuestFile(101, path); ok {
		t.Error("the identity is still in the VM")
	}
	if err := c.GuestExec(ctx, 101, "shred", "-u", path); err == nil || !strings.Contains(err.Error(), "exit 1") {
		t.Errorf("shredding a missing file: %v", err)
	}
}
