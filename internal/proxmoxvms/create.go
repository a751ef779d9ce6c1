package proxmoxvms

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/imagefactory"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/proxmox"
)

// DebianImageURL is Debian 12's generic cloud image (qcow2, cloud-init 22.4).
const DebianImageURL = "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2"

// Node is what Build needs of the Proxmox node.
type Node interface {
	proxmox.VMs
	proxmox.Guest
}

// Build is how the VMs come to exist.
type Build struct {
	PVE     Node
	Factory *imagefactory.Client
	// Undo receives each removal right after the create it undoes.
	Undo func(pipeline.UndoStep)
	// Bridge is the internal bridge (vmbr1).
	Bridge string
	// ImageStorage takes images and ISOs ("local"); DiskStorage the VMs'
	// disks (the ZFS storage; never "local-lvm", which this host has not).
	ImageStorage, DiskStorage string
	TalosVersion              string
	// Poll is how often first-boot results are polled.
	Poll time.Duration
}

// Result is what Build leaves for the steps after it.
type Result struct {
	VMs []VM
	// TalosSchematic is the Image Factory schematic of the Talos VMs.
	TalosSchematic string
	// TeleportIdentity is the provisioner's one-hour identity (secret).
	TeleportIdentity []byte
	// images are the downloaded images' volumes by kind, for CreateTalos.
	images map[string]string
}

// ISOName is the cidata volume's file name: per cluster and VM, so destroy
// finds what a run left by name.
func ISOName(cluster, vm string) string { return "rawkode-" + cluster + "-" + vm + "-cidata.iso" }

// Create brings every planned VM up from its image and its own cidata ISO,
// pushing each undo right after its create, then collects the Teleport
// VM's provisioner identity. The Talos nodes boot configured; waiting for
// them is the shared Talos steps' business.
func (b Build) Create(ctx context.Context, in Input) (*Result, error) {
	res, err := b.CreateServices(ctx, in)
	if err != nil {
		return nil, err
	}
	return res, b.CreateTalos(ctx, in, res)
}

// CreateServices is Create's first half: the images downloaded, the
// HAProxy and Teleport VMs up, and the Teleport VM's provisioner identity
// collected. The Talos VMs' configs need not exist yet (in.Talos is not
// called): their kube agent joins this Teleport, with a token made on it.
func (b Build) CreateServices(ctx context.Context, in Input) (*Result, error) {
	vms, err := Plan(in.Cluster, in.Layout)
	if err != nil {
		return nil, err
	}
	in.Talos = nil // Boots leaves the Talos VMs out
	boots, err := Boots(in, vms)
	if err != nil {
		return nil, err
	}
	res := &Result{VMs: vms}
	images, schematic, err := b.images(ctx)
	if err != nil {
		return nil, err
	}
	res.TalosSchematic, res.images = schematic, images
	for _, boot := range boots {
		if err := b.createVM(ctx, in.Cluster, boot, images[boot.VM.Image]); err != nil {
			return nil, err
		}
	}
	for _, vm := range vms {
		if vm.Role == RoleTeleport {
			id, err := FetchTeleportIdentity(ctx, b.PVE, vm.VMID, b.Poll)
			if err != nil {
				return nil, err
			}
			res.TeleportIdentity = id
		}
	}
	return res, nil
}

// CreateTalos is Create's second half: the Talos VMs, each from its
// cidata ISO with the config in.Talos gives it.
func (b Build) CreateTalos(ctx context.Context, in Input, res *Result) error {
	if in.Talos == nil {
		return fmt.Errorf("the Talos VMs need their configs")
	}
	boots, err := Boots(in, res.VMs)
	if err != nil {
		return err
	}
	for _, boot := range boots {
		if boot.VM.Role != RoleTalos {
			continue
		}
		if err := b.createVM(ctx, in.Cluster, boot, res.images[boot.VM.Image]); err != nil {
			return err
		}
	}
	return nil
}

// images has the node download both images into import content: Debian's
// cloud image, and the Talos nocloud image of a schematic with the guest
// agent and iscsi-tools, checked against the Factory before the node is
// asked to fetch it.
func (b Build) images(ctx context.Context) (map[string]string, string, error) {
	s := imagefactory.ProxmoxVMSchematic()
	if err := b.Factory.Check(ctx, b.TalosVersion, s); err != nil {
		return nil, "", err
	}
	id, err := b.Factory.CreateSchematic(ctx, s)
	if err != nil {
		return nil, "", err
	}
	const asset = "nocloud-amd64.qcow2"
	if _, err := b.Factory.CheckImage(ctx, id, b.TalosVersion, asset); err != nil {
		return nil, "", err
	}
	talosFile := fmt.Sprintf("rawkode-talos-%s-%s-%s", id[:12], b.TalosVersion, asset)
	out := map[string]string{}
	for _, img := range []struct{ kind, file, url string }{
		{ImageDebian, "rawkode-debian-12-genericcloud-amd64.qcow2", DebianImageURL},
		{ImageTalos, talosFile, b.Factory.ImageURL(id, b.TalosVersion, asset)},
	} {
		volid := b.ImageStorage + ":import/" + img.file
		err := b.PVE.DownloadURL(ctx, b.ImageStorage, "import", img.file, img.url)
		// Pushed whatever the answer: the download is a task on the host,
		// which goes on when its client stops waiting (Ctrl-C, a lost
		// answer) and may leave the file after all.
		b.Undo(b.removeVolume(volid, "image"))
		if err != nil {
			return nil, "", err
		}
		out[img.kind] = volid
	}
	return out, id, nil
}

func (b Build) removeVolume(volid, what string) pipeline.UndoStep {
	return pipeline.UndoStep{
		Resource: fmt.Sprintf("Proxmox %s %s", what, volid),
		Command:  "pvesm free " + volid,
		Do: func(ctx context.Context) error {
			err := b.PVE.DeleteVolume(ctx, b.ImageStorage, volid)
			if errors.Is(err, proxmox.ErrNotFound) {
				return nil
			}
			return err
		},
	}
}

func (b Build) createVM(ctx context.Context, cluster string, boot Boot, image string) error {
	vm := boot.VM
	iso, err := boot.ISO()
	if err != nil {
		return fmt.Errorf("build the cidata ISO of %s: %w", vm.Name, err)
	}
	name := ISOName(cluster, vm.Name)
	if err := b.PVE.UploadISO(ctx, b.ImageStorage, name, iso); err != nil {
		return err
	}
	volid := b.ImageStorage + ":iso/" + name
	b.Undo(b.removeVolume(volid, "cidata ISO"))
	spec := proxmox.VMSpec{VMID: vm.VMID, Name: vm.Name, Cores: vm.Cores, MemoryMiB: vm.MemoryMiB, CPU: vm.CPU,
		Tags: vm.Tags, Bridge: b.Bridge, MAC: vm.MAC, DiskStorage: b.DiskStorage, ImportFrom: image,
		DiskGiB: vm.DiskGiB, CIData: volid}
	err = b.PVE.CreateVM(ctx, spec)
	// Pushed whatever the answer: a create that failed half-way (the task
	// failed, the resize was refused) may still have left the VM.
	b.Undo(b.removeVM(vm))
	if err != nil {
		return err
	}
	return b.PVE.StartVM(ctx, vm.VMID)
}

func (b Build) removeVM(vm VM) pipeline.UndoStep {
	return pipeline.UndoStep{
		Resource: fmt.Sprintf("Proxmox VM %d (%s)", vm.VMID, vm.Name),
		Command:  fmt.Sprintf("qm stop %d; qm destroy %d --purge --destroy-unreferenced-disks", vm.VMID, vm.VMID),
		Do: func(ctx context.Context) error {
			if err := b.PVE.StopVM(ctx, vm.VMID); err != nil && !errors.Is(err, proxmox.ErrNotFound) {
				return err
			}
			err := b.PVE.DeleteVM(ctx, vm.VMID)
			if errors.Is(err, proxmox.ErrNotFound) {
				return nil
			}
			return err
		},
	}
}

// RemoveTalosSeeds ejects and deletes the Talos VMs' cidata ISOs once the
// nodes run configured: Talos has stored its config on the STATE partition,
// which it reads first at every boot, and the ISO is a copy of the machine
// config (cluster CA keys) lying on the host's storage. The Debian VMs keep
// theirs: nothing on them is secret, and cloud-init looks for it each boot.
func (b Build) RemoveTalosSeeds(ctx context.Context, cluster string, vms []VM) error {
	var errs []error
	for _, vm := range vms {
		if vm.Role != RoleTalos {
			continue
		}
		if err := b.PVE.EjectCIData(ctx, vm.VMID); err != nil {
			errs = append(errs, err)
			continue
		}
		volid := b.ImageStorage + ":iso/" + ISOName(cluster, vm.Name)
		if err := b.PVE.DeleteVolume(ctx, b.ImageStorage, volid); err != nil && !errors.Is(err, proxmox.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// InventoryVM is one VM as the sandbox inventory shows it.
type InventoryVM struct {
	Name   string   `json:"name"`
	VMID   int      `json:"vmid"`
	IP     string   `json:"ip"`
	Status string   `json:"status"`
	Tags   []string `json:"tags"`
}

// Inventory lists the cluster's VMs on the node (found by tag, no local
// state) with the addresses the plan gave them.
func Inventory(ctx context.Context, pve proxmox.VMs, cluster string, l Layout) ([]InventoryVM, error) {
	listed, err := pve.ListVMs(ctx)
	if err != nil {
		return nil, err
	}
	plan, err := Plan(cluster, l)
	if err != nil {
		return nil, err
	}
	ips := map[string]string{}
	for _, vm := range plan {
		ips[vm.Name] = vm.Address.Addr().String()
	}
	var out []InventoryVM
	for _, v := range listed {
		if !hasTag(v.Tags, ClusterTag(cluster)) {
			continue
		}
		out = append(out, InventoryVM{Name: v.Name, VMID: v.VMID, IP: ips[v.Name], Status: v.Status, Tags: v.Tags})
	}
	return out, nil
}

func hasTag(tags []string, want string) bool {
	for _, t := range tags {
		if strings.EqualFold(t, want) {
			return true
		}
	}
	return false
}
