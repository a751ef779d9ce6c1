package haproxy

import (
	"github.com/rawkode/rawkode-cloud/internal/cloudinit"
)

// ConfigPath is where the VM keeps the rendered file until HAProxy is
// installed: the package ships its own /etc/haproxy/haproxy.cfg as a
// conffile, and writing ours there first would make dpkg ask what to keep.
const ConfigPath = "/etc/rawkode-cloud/haproxy.cfg"

// VM returns the HAProxy VM's first-boot data: HAProxy installed from
// runcmd, the rendered config checked by HAProxy itself before it is used,
// and SSH hardened. vm carries the name, network and admin user.
func VM(c Config, vm cloudinit.VM) (cloudinit.VM, error) {
	cfg, err := Render(c)
	if err != nil {
		return cloudinit.VM{}, err
	}
	vm.Packages = append(vm.Packages, "haproxy")
	vm.Files = append(vm.Files, cloudinit.File{Path: ConfigPath, Content: string(cfg), Permissions: "0644"})
	vm.Commands = append(vm.Commands,
		"haproxy -c -f "+ConfigPath,
		"install -m 0644 -o root -g root "+ConfigPath+" /etc/haproxy/haproxy.cfg",
		"systemctl enable haproxy",
		"systemctl restart haproxy",
	)
	return vm, nil
}
