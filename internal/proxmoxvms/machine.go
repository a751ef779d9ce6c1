package proxmoxvms

import (
	"github.com/rawkode/rawkode-cloud/internal/imagefactory"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
)

// TalosInstallDisk is the Talos VMs' disk (virtio-scsi): the nocloud image
// is already installed on it, so this only matters to upgrades.
const TalosInstallDisk = "/dev/sda"

// MachineInput turns the cluster's machine-config input into a Talos VM's:
// its own address (for the API server's names and the firewall), the
// Kubernetes API VIP as the cluster endpoint, and the schematic of the
// image it booted, so an upgrade keeps the guest agent and iscsi-tools.
func MachineInput(base machineconfig.Input, vm VM, l Layout) (machineconfig.Input, error) {
	id, err := imagefactory.ProxmoxVMSchematic().ID()
	if err != nil {
		return machineconfig.Input{}, err
	}
	in := base
	in.PublicIP = vm.Address.Addr()
	in.Endpoint = l.APIVIP.String()
	in.DNSName = ""
	in.SchematicID = id
	in.InstallDisk = TalosInstallDisk
	return in, nil
}
