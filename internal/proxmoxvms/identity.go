package proxmoxvms

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/proxmox"
	"github.com/rawkode/rawkode-cloud/internal/teleportvm"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// FetchTeleportIdentity collects the one-hour provisioner identity the
// Teleport VM's first boot leaves in tmpfs (see teleportvm), through the
// guest agent, and removes it from the VM at once: from then on the only
// copy is in this process's memory. It waits while first boot is still
// installing Teleport (the agent says "No such file").
func FetchTeleportIdentity(ctx context.Context, g proxmox.Guest, vmid int, poll time.Duration) ([]byte, error) {
	var identity []byte
	err := wait.Until(ctx, "the Teleport VM's provisioner identity", wait.Options{Interval: poll}, func(ctx context.Context) (bool, string, error) {
		data, err := g.GuestReadFile(ctx, vmid, teleportvm.IdentityPath)
		switch {
		case err == nil && len(data) > 0:
			identity = data
			return true, "written", nil
		case err == nil:
			return false, "being written", nil
		case missing(err):
			return false, "first boot still running", nil
		default:
			return false, "", err
		}
	})
	if err != nil {
		return nil, err
	}
	if err := g.GuestExec(ctx, vmid, "shred", "-u", teleportvm.IdentityPath); err != nil {
		return nil, fmt.Errorf("remove the provisioner identity from the Teleport VM: %w", err)
	}
	return identity, nil
}

// missing says whether the agent could not find the file (yet), or the VM's
// agent is not up yet: both pass as first boot goes on.
func missing(err error) bool {
	var ae *proxmox.APIError
	if !errors.As(err, &ae) {
		return false
	}
	return strings.Contains(ae.Message, "No such file or directory") || strings.Contains(ae.Message, "QEMU guest agent is not running")
}
