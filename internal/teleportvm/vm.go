package teleportvm

import (
	"fmt"
	"path"

	"github.com/rawkode/rawkode-cloud/internal/cloudinit"
)

// AptRepo is Teleport's signed Debian repository for the major version the
// VM runs (Community edition).
var AptRepo = cloudinit.AptRepo{
	Name:   "teleport",
	KeyURL: "https://apt.releases.teleport.dev/gpg",
	Source: fmt.Sprintf("https://apt.releases.teleport.dev/debian bookworm stable/v%d", MajorVersion),
}

// VM returns the Teleport VM's first-boot data (see the package comment for
// the identity it leaves in memory for the CLI). Nothing in it is secret.
func VM(c Config, vm cloudinit.VM) (cloudinit.VM, error) {
	cfg, err := TeleportYAML(c)
	if err != nil {
		return cloudinit.VM{}, err
	}
	boot, err := BootstrapResources(c)
	if err != nil {
		return cloudinit.VM{}, err
	}
	vm.Repos = append(vm.Repos, AptRepo)
	vm.Packages = append(vm.Packages, "teleport")
	vm.Files = append(vm.Files,
		cloudinit.File{Path: "/etc/teleport.yaml", Content: string(cfg), Permissions: "0600"},
		cloudinit.File{Path: BootstrapPath, Content: string(boot), Permissions: "0600"},
	)
	ttl := fmt.Sprintf("%dm", int(IdentityTTL.Minutes()))
	vm.Commands = append(vm.Commands,
		"systemctl enable --now teleport",
		// tctl on the auth server acts with the server's own credentials
		// once the auth service answers.
		"timeout 600 sh -c 'until tctl status >/dev/null 2>&1; do sleep 2; done'",
		"tctl create -f "+BootstrapPath,
		"install -d -m 0700 "+path.Dir(IdentityPath),
		"umask 077 && tctl auth sign --user="+ProvisionerUser+" --format=file --ttl="+ttl+" --overwrite --out="+IdentityPath,
	)
	return vm, nil
}
