package proxmoxvms_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/imagefactory"
	ifemu "github.com/rawkode/rawkode-cloud/internal/imagefactory/emulator"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/proxmox"
	pveemu "github.com/rawkode/rawkode-cloud/internal/proxmox/emulator"
	"github.com/rawkode/rawkode-cloud/internal/proxmoxvms"
	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/teleportvm"
	"github.com/rawkode/rawkode-cloud/internal/testwait"
)

type rig struct {
	pve   *pveemu.Emulator
	fac   *ifemu.Emulator
	c     *proxmox.Client
	build proxmoxvms.Build
	mu    sync.Mutex
	undo  []pipeline.UndoStep
}

func newRig(t *testing.T, ctx context.Context) *rig {
	t.Helper()
	return newRigWith(t, ctx, pveemu.Delays{})
}

func newRigWith(t *testing.T, ctx context.Context, delays pveemu.Delays) *rig {
	t.Helper()
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	e, err := pveemu.New(pveemu.Options{RootPasswordHash: string(h), Delays: delays})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	f := ifemu.New(ifemu.Options{})
	t.Cleanup(f.Close)
	pol := retry.Policy{Initial: time.Millisecond, MaxAttempts: 3}
	c, err := proxmox.New(ctx, proxmox.Config{URL: e.URL(), Node: e.Node(), Username: "root@pam", Password: "pw",
		HTTPClient: e.HTTPClient(), TaskPoll: 5 * time.Millisecond, Retry: pol})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetStorageContent(ctx, "local", []string{"backup", "import", "iso", "vztmpl"}); err != nil {
		t.Fatal(err)
	}
	fc, err := imagefactory.New(imagefactory.Options{URL: f.URL(), Retry: pol})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{pve: e, fac: f, c: c}
	r.build = proxmoxvms.Build{PVE: c, Factory: fc, Bridge: "vmbr0", ImageStorage: "local", DiskStorage: "local-zfs",
		TalosVersion: "v1.12.4", Poll: 5 * time.Millisecond,
		Undo: func(s pipeline.UndoStep) { r.mu.Lock(); r.undo = append(r.undo, s); r.mu.Unlock() }}
	return r
}

// firstBoot plays the Teleport VM's first boot: once the VM exists, the
// identity appears in it.
func (r *rig) firstBoot(ctx context.Context) {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !r.pve.WriteGuestFile(101, teleportvm.IdentityPath, []byte("provisioner-identity")) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (r *rig) cleanup(t *testing.T, ctx context.Context) {
	t.Helper()
	for i := len(r.undo) - 1; i >= 0; i-- {
		if err := r.undo[i].Do(ctx); err != nil {
			t.Errorf("undo %s: %v", r.undo[i].Resource, err)
		}
	}
	vms, _ := r.c.ListVMs(ctx)
	isos, _ := r.c.Volumes(ctx, "local", "iso")
	imgs, _ := r.c.Volumes(ctx, "local", "import")
	if len(vms)+len(isos)+len(imgs) != 0 {
		t.Errorf("left behind: VMs %v, ISOs %v, images %v", vms, isos, imgs)
	}
}

func TestCreateBuildsEveryVMAndUndoRemovesAll(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := newRig(t, ctx)
	go r.firstBoot(ctx)
	in := input(t)
	res, err := r.build.Create(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.TeleportIdentity) != "provisioner-identity" {
		t.Errorf("identity %q", res.TeleportIdentity)
	}
	if _, ok := r.pve.GuestFile(101, teleportvm.IdentityPath); ok {
		t.Error("the identity stayed in the Teleport VM")
	}
	want, _ := imagefactory.ProxmoxVMSchematic().ID()
	if res.TalosSchematic != want {
		t.Errorf("schematic %s", res.TalosSchematic)
	}
	inv, err := proxmoxvms.Inventory(ctx, r.c, "sandbox", in.Layout)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range inv {
		got = append(got, v.Name+"@"+v.IP+":"+v.Status)
		if !slices.Contains(v.Tags, "cluster-sandbox") {
			t.Errorf("%s tags %v", v.Name, v.Tags)
		}
	}
	if strings.Join(got, " ") != "haproxy@10.10.0.3:running teleport@10.10.0.2:running sandbox-cp-1@10.10.0.10:running sandbox-cp-2@10.10.0.11:running sandbox-cp-3@10.10.0.12:running" {
		t.Errorf("inventory %v", got)
	}
	if len(r.undo) != 12 {
		t.Errorf("%d undo steps, want 2 images + 5 ISOs + 5 VMs", len(r.undo))
	}
	// Once the nodes run configured, their configs leave the host's storage.
	if err := r.build.RemoveTalosSeeds(ctx, "sandbox", res.VMs); err != nil {
		t.Fatal(err)
	}
	isos, _ := r.c.Volumes(ctx, "local", "iso")
	if strings.Join(isos, " ") != "local:iso/rawkode-sandbox-haproxy-cidata.iso local:iso/rawkode-sandbox-teleport-cidata.iso" {
		t.Errorf("ISOs left: %v", isos)
	}
	r.cleanup(t, ctx)
}

// A refused VM create half-way: everything created so far is undone.
func TestCreateFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := newRig(t, ctx)
	// The first VM create is refused, after both images and an ISO exist.
	r.pve.Faults().Set(pveemu.FaultQemu, emulator.Fault{Kind: emulator.Error, Times: 1})
	if _, err := r.build.Create(ctx, input(t)); err == nil {
		t.Fatal("no error")
	}
	r.cleanup(t, ctx)
}

// Ctrl-C while the host downloads an image: the download is a task on the
// host and finishes without anybody waiting for it; cleanup must still
// remove the file it leaves.
func TestInterruptedDownloadIsUndone(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := newRigWith(t, ctx, pveemu.Delays{Download: 300 * time.Millisecond})
	interrupted, stop := context.WithCancel(ctx)
	go func() { // Ctrl-C once the first download task runs
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for r.pve.Counters().Get("POST /nodes/{node}/storage/{storage}/download-url") == 0 {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		stop()
	}()
	if _, err := r.build.Create(interrupted, input(t)); err == nil {
		t.Fatal("no error")
	}
	// The task goes on: wait until the host holds the file, then clean up.
	testwait.For(t, 30*time.Second, "the interrupted download to finish on the host", func() bool {
		imgs, err := r.c.Volumes(ctx, "local", "import")
		return err == nil && len(imgs) > 0
	})
	r.cleanup(t, ctx)
}

// An extension the Factory cannot build stops the run before the node
// downloads anything.
func TestCreateChecksTheFactoryFirst(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := newRig(t, ctx)
	r.build.TalosVersion = "v1.99.0"
	if _, err := r.build.Create(ctx, input(t)); err == nil || !strings.Contains(err.Error(), "does not build Talos v1.99.0") {
		t.Fatalf("err %v", err)
	}
	if len(r.undo) != 0 {
		t.Errorf("%d things created", len(r.undo))
	}
}
