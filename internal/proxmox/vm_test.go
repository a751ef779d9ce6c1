package proxmox_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/proxmox"
	pveemu "github.com/rawkode/rawkode-cloud/internal/proxmox/emulator"
)

// One Talos VM's life through the API, as the topology drives it: the image
// downloaded into import content, the cidata ISO uploaded from memory, the
// VM created from both, started, found by its tags, stopped and deleted.
func TestVMLifecycle(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := start(t, pveemu.Options{})
	c, err := rootClient(t, ctx, e, rootPassword)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetStorageContent(ctx, "local", []string{"backup", "import", "iso", "vztmpl"}); err != nil {
		t.Fatal(err)
	}
	const image = "talos-v1.12.4-nocloud-amd64.qcow2"
	if err := c.DownloadURL(ctx, "local", "import", image, "https://factory.talos.dev/image/x/v1.12.4/nocloud-amd64.qcow2"); err != nil {
		t.Fatal(err)
	}
	if err := c.UploadISO(ctx, "local", "sandbox-cp-1-cidata.iso", []byte("an ISO")); err != nil {
		t.Fatal(err)
	}
	isos, err := c.Volumes(ctx, "local", "iso")
	if err != nil || len(isos) != 1 || isos[0] != "local:iso/sandbox-cp-1-cidata.iso" {
		t.Fatalf("iso volumes %v, %v", isos, err)
	}
	spec := proxmox.VMSpec{VMID: 110, Name: "sandbox-cp-1", Cores: 3, MemoryMiB: 8192, CPU: "host",
		Tags: []string{"rawkode-cloud", "cluster-sandbox", "talos"}, Bridge: "vmbr0", MAC: "02:4e:c8:58:5d:e3",
		DiskStorage: "local-zfs", ImportFrom: "local:import/" + image, DiskGiB: 10, CIData: isos[0]}
	if err := c.CreateVM(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateVM(ctx, spec); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second create: %v", err)
	}
	if err := c.StartVM(ctx, 110); err != nil {
		t.Fatal(err)
	}
	vms, err := c.ListVMs(ctx)
	if err != nil || len(vms) != 1 || vms[0].Status != "running" || strings.Join(vms[0].Tags, ",") != "rawkode-cloud,cluster-sandbox,talos" {
		t.Fatalf("VMs %+v, %v", vms, err)
	}
	if err := c.DeleteVM(ctx, 110); err == nil || !strings.Contains(err.Error(), "running") {
		t.Errorf("deleting a running VM: %v", err)
	}
	if err := c.StopVM(ctx, 110); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteVM(ctx, 110); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteVM(ctx, 110); !errors.Is(err, proxmox.ErrNotFound) {
		t.Errorf("deleting it again: %v, want ErrNotFound (undo is idempotent)", err)
	}
	if err := c.DeleteVolume(ctx, "local", isos[0]); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteVolume(ctx, "local", isos[0]); !errors.Is(err, proxmox.ErrNotFound) {
		t.Errorf("deleting the ISO again: %v", err)
	}
}

// The emulator checks parameters against the API schema; a VM without the
// image it imports from is refused as PVE refuses it.
func TestCreateVMNeedsItsImage(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := start(t, pveemu.Options{})
	c, err := rootClient(t, ctx, e, rootPassword)
	if err != nil {
		t.Fatal(err)
	}
	err = c.CreateVM(ctx, proxmox.VMSpec{VMID: 100, Name: "haproxy", Cores: 1, MemoryMiB: 2048, Bridge: "vmbr0",
		MAC: "02:00:00:00:00:01", DiskStorage: "local-zfs", ImportFrom: "local:import/missing.qcow2", DiskGiB: 8})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("create from a missing image: %v", err)
	}
	if err := c.CreateVM(ctx, proxmox.VMSpec{VMID: 7, Name: "x"}); err == nil {
		t.Error("VM ID 7 accepted")
	}
}
