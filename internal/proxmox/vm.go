package proxmox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// VMs is what the topology uses to make its VMs exist: images in, VMs
// created from them, each with its own cidata ISO, started, found again by
// tag, and removed.
type VMs interface {
	// DownloadURL has the node fetch url into storage as filename (content
	// "iso" or "import") and waits for the task.
	DownloadURL(ctx context.Context, storage, content, filename, url string) error
	// UploadISO uploads an ISO from memory (the cidata volumes: the API
	// cannot upload snippets) and waits for the task.
	UploadISO(ctx context.Context, storage, filename string, data []byte) error
	// DeleteVolume removes a volume (e.g. "local:iso/x.iso"); ErrNotFound if gone.
	DeleteVolume(ctx context.Context, storage, volid string) error
	// Volumes lists a storage's volume IDs of one content type.
	Volumes(ctx context.Context, storage, content string) ([]string, error)
	CreateVM(ctx context.Context, spec VMSpec) error
	StartVM(ctx context.Context, vmid int) error
	// StopVM powers the VM off at once (undo does not wait for a guest).
	StopVM(ctx context.Context, vmid int) error
	// DeleteVM destroys a stopped VM and its disks; ErrNotFound if gone.
	DeleteVM(ctx context.Context, vmid int) error
	ListVMs(ctx context.Context) ([]VMInfo, error)
	// EjectCIData empties the VM's cidata drive (ide2), so its volume can
	// be deleted while the VM keeps running.
	EjectCIData(ctx context.Context, vmid int) error
}

var _ VMs = (*Client)(nil)

// VMSpec is one VM as the topology creates it.
type VMSpec struct {
	VMID      int
	Name      string
	Cores     int
	MemoryMiB int
	// CPU is the QEMU CPU type ("host").
	CPU  string
	Tags []string
	// Bridge and MAC of the one NIC (virtio).
	Bridge, MAC string
	// DiskStorage holds the boot disk; ImportFrom is the image volume it is
	// imported from ("local:import/x.qcow2", the API's form of `qm
	// importdisk`), DiskGiB its final size.
	DiskStorage, ImportFrom string
	DiskGiB                 int
	// CIData is the cidata ISO volume ("local:iso/x.iso"), on ide2.
	CIData string
}

// VMInfo is a VM as the node lists it.
type VMInfo struct {
	VMID   int
	Name   string
	Status string // running, stopped
	Tags   []string
}

func (s VMSpec) params() (map[string]string, error) {
	switch {
	case s.VMID < 100:
		return nil, fmt.Errorf("VM %q: VM IDs start at 100", s.Name)
	case s.Name == "" || s.Cores < 1 || s.MemoryMiB < 16:
		return nil, fmt.Errorf("VM %d: name, cores and memory are required", s.VMID)
	case s.Bridge == "" || s.MAC == "" || s.DiskStorage == "" || s.ImportFrom == "" || s.DiskGiB < 1:
		return nil, fmt.Errorf("VM %s: network, disk storage, image and disk size are required", s.Name)
	}
	p := map[string]string{
		"vmid":   strconv.Itoa(s.VMID),
		"name":   s.Name,
		"cores":  strconv.Itoa(s.Cores),
		"memory": strconv.Itoa(s.MemoryMiB),
		"cpu":    s.CPU,
		"net0":   "virtio=" + strings.ToUpper(s.MAC) + ",bridge=" + s.Bridge,
		// virtio-scsi-single gives each disk its own controller, which
		// iothread needs.
		"scsihw": "virtio-scsi-single",
		"scsi0":  s.DiskStorage + ":0,import-from=" + s.ImportFrom + ",discard=on,iothread=1",
		"boot":   "order=scsi0",
		"agent":  "enabled=1",
		"onboot": "1",
		"ostype": "l26",
	}
	if s.CPU == "" {
		delete(p, "cpu")
	}
	if len(s.Tags) > 0 {
		p["tags"] = strings.Join(s.Tags, ";")
	}
	if s.CIData != "" {
		p["ide2"] = s.CIData + ",media=cdrom"
	}
	return p, nil
}

func (c *Client) vmPath(vmid int) string { return fmt.Sprintf("/nodes/%s/qemu/%d", c.node(), vmid) }

// CreateVM creates the VM from its image and grows the disk to its size.
func (c *Client) CreateVM(ctx context.Context, s VMSpec) error {
	p, err := s.params()
	if err != nil {
		return err
	}
	var upid string
	if err := c.post(ctx, fmt.Sprintf("/nodes/%s/qemu", c.node()), p, &upid); err != nil {
		return fmt.Errorf("create VM %d (%s): %w", s.VMID, s.Name, err)
	}
	if err := c.WaitTask(ctx, upid); err != nil {
		return fmt.Errorf("create VM %d (%s): %w", s.VMID, s.Name, err)
	}
	// PVE answers resize with a task ID (PVE 8+) or nothing (older).
	var res json.RawMessage
	body := map[string]string{"disk": "scsi0", "size": strconv.Itoa(s.DiskGiB) + "G"}
	if err := c.put(ctx, c.vmPath(s.VMID)+"/resize", body, &res); err != nil {
		return fmt.Errorf("resize the disk of VM %d (%s) to %d GiB: %w", s.VMID, s.Name, s.DiskGiB, err)
	}
	var task string
	if json.Unmarshal(res, &task) == nil && task != "" {
		if err := c.WaitTask(ctx, task); err != nil {
			return fmt.Errorf("resize the disk of VM %d (%s): %w", s.VMID, s.Name, err)
		}
	}
	return nil
}

func (c *Client) vmTask(ctx context.Context, what string, vmid int, call func(ctx context.Context, upid *string) error) error {
	var upid string
	if err := call(ctx, &upid); err != nil {
		return fmt.Errorf("%s VM %d: %w", what, vmid, err)
	}
	if err := c.WaitTask(ctx, upid); err != nil {
		return fmt.Errorf("%s VM %d: %w", what, vmid, err)
	}
	return nil
}

// StartVM boots the VM.
func (c *Client) StartVM(ctx context.Context, vmid int) error {
	return c.vmTask(ctx, "start", vmid, func(ctx context.Context, upid *string) error {
		return c.post(ctx, c.vmPath(vmid)+"/status/start", map[string]string{}, upid)
	})
}

// StopVM powers the VM off.
func (c *Client) StopVM(ctx context.Context, vmid int) error {
	return c.vmTask(ctx, "stop", vmid, func(ctx context.Context, upid *string) error {
		return c.post(ctx, c.vmPath(vmid)+"/status/stop", map[string]string{}, upid)
	})
}

// DeleteVM destroys the VM with its disks, and the unreferenced ones too.
func (c *Client) DeleteVM(ctx context.Context, vmid int) error {
	return c.vmTask(ctx, "delete", vmid, func(ctx context.Context, upid *string) error {
		return c.del(ctx, c.vmPath(vmid)+"?purge=1&destroy-unreferenced-disks=1", upid)
	})
}

// ListVMs lists the node's VMs, sorted by ID.
func (c *Client) ListVMs(ctx context.Context) ([]VMInfo, error) {
	var raw []struct {
		VMID   int    `json:"vmid"`
		Name   string `json:"name"`
		Status string `json:"status"`
		Tags   string `json:"tags"`
	}
	if err := c.get(ctx, fmt.Sprintf("/nodes/%s/qemu", c.node()), &raw); err != nil {
		return nil, fmt.Errorf("list VMs: %w", err)
	}
	out := make([]VMInfo, 0, len(raw))
	for _, r := range raw {
		var tags []string
		for _, t := range strings.FieldsFunc(r.Tags, func(r rune) bool { return r == ';' || r == ',' || r == ' ' }) {
			tags = append(tags, t)
		}
		out = append(out, VMInfo{VMID: r.VMID, Name: r.Name, Status: r.Status, Tags: tags})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].VMID < out[j].VMID })
	return out, nil
}

func (c *Client) storagePath(storage string) string {
	return fmt.Sprintf("/nodes/%s/storage/%s", c.node(), url.PathEscape(storage))
}

// DownloadURL has the node download url.
func (c *Client) DownloadURL(ctx context.Context, storage, content, filename, u string) error {
	var upid string
	body := map[string]string{"content": content, "filename": filename, "url": u}
	if err := c.post(ctx, c.storagePath(storage)+"/download-url", body, &upid); err != nil {
		return fmt.Errorf("download %s to %s: %w", filename, storage, err)
	}
	if err := c.WaitTask(ctx, upid); err != nil {
		return fmt.Errorf("download %s to %s: %w", filename, storage, err)
	}
	return nil
}

// UploadISO uploads data as an ISO. go-proxmox's UploadReader streams from
// memory, so the cidata volume (a Talos machine config) never touches the
// disk here.
func (c *Client) UploadISO(ctx context.Context, storage, filename string, data []byte) error {
	var upid string
	err := c.do(ctx, func(ctx context.Context) error {
		return unwrapAPI(c.c.UploadReader(c.storagePath(storage)+"/upload", map[string]string{"content": "iso"},
			filename, bytes.NewReader(data), int64(len(data)), &upid))
	})
	if err != nil {
		return fmt.Errorf("upload %s to %s: %w", filename, storage, err)
	}
	if upid == "" {
		return retry.Permanent(fmt.Errorf("upload %s to %s: the node returned no task", filename, storage))
	}
	if err := c.WaitTask(ctx, upid); err != nil {
		return fmt.Errorf("upload %s to %s: %w", filename, storage, err)
	}
	return nil
}

// DeleteVolume removes a volume from a storage.
func (c *Client) DeleteVolume(ctx context.Context, storage, volid string) error {
	var upid string
	if err := c.del(ctx, c.storagePath(storage)+"/content/"+url.PathEscape(volid), &upid); err != nil {
		return fmt.Errorf("delete volume %s: %w", volid, err)
	}
	if upid != "" {
		if err := c.WaitTask(ctx, upid); err != nil {
			return fmt.Errorf("delete volume %s: %w", volid, err)
		}
	}
	return nil
}

// Volumes lists a storage's volumes of one content type, sorted.
func (c *Client) Volumes(ctx context.Context, storage, content string) ([]string, error) {
	var raw []struct {
		Volid string `json:"volid"`
	}
	if err := c.get(ctx, c.storagePath(storage)+"/content?content="+url.QueryEscape(content), &raw); err != nil {
		return nil, fmt.Errorf("list %s volumes of %s: %w", content, storage, err)
	}
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		out = append(out, r.Volid)
	}
	sort.Strings(out)
	return out, nil
}

// Guest is what the CLI does inside a VM, through the QEMU guest agent and
// the Proxmox API (never SSH): read a file first boot left, and remove it.
// PVE 9 needs VM.GuestAgent.FileRead and VM.GuestAgent.Unrestricted for
// these; the automation user's Administrator role has both.
type Guest interface {
	GuestReadFile(ctx context.Context, vmid int, path string) ([]byte, error)
	// GuestExec runs argv in the guest and waits for it; a non-zero exit
	// is an error carrying the command's stderr.
	GuestExec(ctx context.Context, vmid int, argv ...string) error
}

var _ Guest = (*Client)(nil)

// GuestReadFile reads a file inside the VM (at most 16 MiB, the API's limit).
func (c *Client) GuestReadFile(ctx context.Context, vmid int, path string) ([]byte, error) {
	var out struct {
		Content   string `json:"content"`
		Truncated bool   `json:"truncated"`
	}
	if err := c.get(ctx, c.vmPath(vmid)+"/agent/file-read?file="+url.QueryEscape(path), &out); err != nil {
		return nil, fmt.Errorf("read %s in VM %d: %w", path, vmid, err)
	}
	if out.Truncated {
		return nil, fmt.Errorf("read %s in VM %d: the file is larger than the guest agent returns", path, vmid)
	}
	return []byte(out.Content), nil
}

// GuestExec runs a command in the VM and waits until it exits.
func (c *Client) GuestExec(ctx context.Context, vmid int, argv ...string) error {
	var started struct {
		PID int `json:"pid"`
	}
	if err := c.post(ctx, c.vmPath(vmid)+"/agent/exec", map[string]any{"command": argv}, &started); err != nil {
		return fmt.Errorf("run %s in VM %d: %w", argv[0], vmid, err)
	}
	var st struct {
		// A boolean in the schema, 1/0 from PVE's Perl; either is read.
		Exited   json.RawMessage `json:"exited"`
		ExitCode int             `json:"exitcode"`
		ErrData  string          `json:"err-data"`
	}
	err := wait.Until(ctx, fmt.Sprintf("%s in VM %d", argv[0], vmid), wait.Options{Interval: c.cfg.TaskPoll}, func(ctx context.Context) (bool, string, error) {
		if err := c.get(ctx, fmt.Sprintf("%s/agent/exec-status?pid=%d", c.vmPath(vmid), started.PID), &st); err != nil {
			return false, "", err
		}
		e := string(st.Exited)
		return e == "1" || e == "true", "running", nil
	})
	if err != nil {
		return fmt.Errorf("run %s in VM %d: %w", argv[0], vmid, err)
	}
	if st.ExitCode != 0 {
		return fmt.Errorf("run %s in VM %d: exit %d: %s", argv[0], vmid, st.ExitCode, strings.TrimSpace(st.ErrData))
	}
	return nil
}

// EjectCIData leaves an empty CD-ROM drive on ide2.
func (c *Client) EjectCIData(ctx context.Context, vmid int) error {
	var out json.RawMessage
	if err := c.put(ctx, c.vmPath(vmid)+"/config", map[string]string{"ide2": "none,media=cdrom"}, &out); err != nil {
		return fmt.Errorf("eject the cidata ISO of VM %d: %w", vmid, err)
	}
	return nil
}
