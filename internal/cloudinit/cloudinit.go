// Package cloudinit renders the first-boot data of the Proxmox topology's
// Debian VMs (HAProxy, Teleport): `user-data` (#cloud-config), `meta-data`
// and a version 2 `network-config`, which the CLI puts on each VM's cidata
// ISO. Proxmox's own cloud-init drive is not used: its custom user data
// comes only from snippets, which the Proxmox API cannot upload.
//
// Two lessons of the second design document are built in: packages are
// installed from runcmd, because the Debian 12 image's cloud-init 22.4.2
// sometimes skips `packages`; and SSH is hardened by a drop-in that sorts
// before everything else in sshd_config.d (sshd takes the first value it
// reads), checked with `sshd -t` before sshd reloads.
package cloudinit

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	"go.yaml.in/yaml/v4"
)

// VM is one Debian VM's first-boot data.
type VM struct {
	Hostname string
	// Network is the VM's one interface on the internal bridge.
	Network Interface
	// AuthorizedKeys for the admin user; empty means nobody logs in with
	// SSH keys (access goes through Teleport and the Proxmox console).
	AuthorizedKeys []string
	// AdminUser is the sudo user that exists on the VM ("deploy" in the
	// document, and a login of Teleport's infra-admin role).
	AdminUser string
	// Repos are extra apt repositories, set up before the packages install.
	Repos []AptRepo
	// Packages to install (from runcmd), besides qemu-guest-agent.
	Packages []string
	// Files to write before the commands run.
	Files []File
	// Commands run after the packages are installed, in order, as sh -c.
	Commands []string
}

// Interface is a static address on one NIC, matched by MAC so the config
// does not depend on how the guest names its interfaces.
type Interface struct {
	MAC         string
	Address     netip.Prefix // e.g. 10.10.0.3/24
	Gateway     netip.Addr
	Nameservers []netip.Addr
}

// AptRepo is a signed apt repository: its key is fetched to
// /etc/apt/keyrings/<Name>.asc and only that key may sign it.
type AptRepo struct {
	Name   string // file name stem, e.g. "teleport"
	KeyURL string
	// Source is the part of the deb line after the options, e.g.
	// "https://apt.releases.teleport.dev/debian bookworm stable/v18".
	Source string
}

// File is written by write_files.
type File struct {
	Path        string
	Content     string
	Permissions string // e.g. "0600"
	Owner       string // e.g. "root:root"
}

// SSHHardening is the sshd drop-in every VM gets.
const SSHHardening = `# Written by rawkode-cloud at first boot.
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
X11Forwarding no
AllowAgentForwarding no
MaxAuthTries 3
`

// SSHHardeningPath sorts before cloud-init's own 50-cloud-init.conf.
const SSHHardeningPath = "/etc/ssh/sshd_config.d/01-rawkode-cloud.conf"

type cloudConfig struct {
	Hostname       string      `yaml:"hostname"`
	FQDN           string      `yaml:"fqdn,omitempty"`
	ManageEtcHosts bool        `yaml:"manage_etc_hosts"`
	DisableRoot    bool        `yaml:"disable_root"`
	SSHPwauth      bool        `yaml:"ssh_pwauth"`
	Users          []user      `yaml:"users"`
	WriteFiles     []writeFile `yaml:"write_files"`
	Runcmd         []string    `yaml:"runcmd"`
}

type user struct {
	Name              string   `yaml:"name"`
	Groups            string   `yaml:"groups,omitempty"`
	Shell             string   `yaml:"shell,omitempty"`
	Sudo              string   `yaml:"sudo,omitempty"`
	LockPasswd        bool     `yaml:"lock_passwd"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys,omitempty"`
}

type writeFile struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content"`
	Permissions string `yaml:"permissions"`
	Owner       string `yaml:"owner"`
}

// UserData renders the #cloud-config.
func UserData(vm VM) ([]byte, error) {
	if vm.Hostname == "" || vm.AdminUser == "" {
		return nil, fmt.Errorf("cloud-init: a VM needs a hostname and an admin user")
	}
	cc := cloudConfig{
		Hostname: vm.Hostname, ManageEtcHosts: true, DisableRoot: true, SSHPwauth: false,
		Users: []user{{Name: vm.AdminUser, Groups: "sudo", Shell: "/bin/bash", Sudo: "ALL=(ALL) NOPASSWD:ALL",
			LockPasswd: true, SSHAuthorizedKeys: vm.AuthorizedKeys}},
	}
	cc.WriteFiles = append(cc.WriteFiles, writeFile{Path: SSHHardeningPath, Content: SSHHardening, Permissions: "0644", Owner: "root:root"})
	for _, f := range vm.Files {
		perm, owner := f.Permissions, f.Owner
		if perm == "" {
			perm = "0644"
		}
		if owner == "" {
			owner = "root:root"
		}
		cc.WriteFiles = append(cc.WriteFiles, writeFile{Path: f.Path, Content: f.Content, Permissions: perm, Owner: owner})
	}
	for _, r := range vm.Repos {
		key := "/etc/apt/keyrings/" + r.Name + ".asc"
		cc.WriteFiles = append(cc.WriteFiles, writeFile{Path: "/etc/apt/sources.list.d/" + r.Name + ".list",
			Content: "deb [signed-by=" + key + "] " + r.Source + "\n", Permissions: "0644", Owner: "root:root"})
	}
	pkgs := append([]string{"qemu-guest-agent"}, vm.Packages...)
	cc.Runcmd = append(cc.Runcmd, "sshd -t && systemctl reload ssh")
	for _, r := range vm.Repos {
		cc.Runcmd = append(cc.Runcmd, "install -d -m 0755 /etc/apt/keyrings && curl -fsSL --retry 5 "+r.KeyURL+" -o /etc/apt/keyrings/"+r.Name+".asc")
	}
	cc.Runcmd = append(cc.Runcmd,
		"export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q --no-install-recommends "+strings.Join(pkgs, " "),
		// The guest agent is how Proxmox (and through it the CLI) sees the
		// VM's addresses and shuts it down cleanly.
		"systemctl enable --now qemu-guest-agent",
	)
	cc.Runcmd = append(cc.Runcmd, vm.Commands...)
	var buf bytes.Buffer
	buf.WriteString("#cloud-config\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(cc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// MetaData renders meta-data; the instance ID changes when the VM is
// recreated, so cloud-init runs again on a rebuilt VM.
func MetaData(instanceID, hostname string) []byte {
	return []byte("instance-id: " + instanceID + "\nlocal-hostname: " + hostname + "\n")
}

// NetworkConfig renders a version 2 network-config for the one interface.
func NetworkConfig(i Interface) ([]byte, error) {
	if i.MAC == "" || !i.Address.IsValid() || !i.Gateway.IsValid() {
		return nil, fmt.Errorf("cloud-init: network config needs a MAC, an address and a gateway")
	}
	type match struct {
		MAC string `yaml:"macaddress"`
	}
	type ns struct {
		Addresses []string `yaml:"addresses"`
	}
	type route struct {
		To  string `yaml:"to"`
		Via string `yaml:"via"`
	}
	type eth struct {
		Match       match    `yaml:"match"`
		SetName     string   `yaml:"set-name"`
		Addresses   []string `yaml:"addresses"`
		Routes      []route  `yaml:"routes"`
		Nameservers ns       `yaml:"nameservers"`
	}
	var servers []string
	for _, a := range i.Nameservers {
		servers = append(servers, a.String())
	}
	doc := struct {
		Version   int            `yaml:"version"`
		Ethernets map[string]eth `yaml:"ethernets"`
	}{Version: 2, Ethernets: map[string]eth{"internal": {
		Match: match{MAC: strings.ToLower(i.MAC)}, SetName: "eth0", Addresses: []string{i.Address.String()},
		Routes: []route{{To: "0.0.0.0/0", Via: i.Gateway.String()}}, Nameservers: ns{Addresses: servers},
	}}}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
