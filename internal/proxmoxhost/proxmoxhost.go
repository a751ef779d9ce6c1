// Package proxmoxhost renders the cloud-init user data that turns the
// Debian 12 Scaleway installs on an Elastic Metal server into the Proxmox VE
// host of the proxmox topology, with everything the second design document
// does by hand over SSH done on first boot instead: the Proxmox VE install
// (Proxmox's "Proxmox VE on Debian" procedure: kernel, reboot, packages),
// the public address moved onto vmbr0, IP forwarding, NAT for the internal
// network and the public port forwards to its VMs, the ZFS pool with the
// datasets democratic-csi uses, the iSCSI target, the content types of the
// `local` storage and the host name resolving to the public address. Each
// survives a reboot: files and systemd units, not one-off commands.
//
// What it leaves to the API (and so to the CLI, which can check it): the
// internal bridge vmbr1, the firewall, users and tokens. Root gets a
// password whose hash only is in the user data; nobody logs in with SSH.
package proxmoxhost

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"
)

// ScriptPath is where the setup script lives on the host.
const ScriptPath = "/usr/local/sbin/rawkode-host-setup"

// EnvPath holds the rendered settings the script reads.
const EnvPath = "/etc/rawkode-cloud/host.env"

//go:embed setup.sh
var script string

// Script is the setup script, as shellcheck sees it.
func Script() string { return script }

// Forward is one public TCP port forwarded to an internal address.
type Forward struct {
	Port int
	To   netip.Addr
}

// OperatorForward is one public TCP port forwarded to an internal address
// and port for the operator only: its DNAT matches sources in the kernel
// ipset pve-firewall makes of Options.OperatorIPSet, which the CLI fills
// with its own /32 through the API for the run and empties at lockdown.
type OperatorForward struct {
	Port int            // on the host's public address
	To   netip.AddrPort // in the internal network
}

// KernelIPSet is the kernel ipset pve-firewall materialises from the
// datacenter IP set name while the datacenter firewall is on: "PVEFW-" +
// "0-<name>-v4" (pve-firewall's compute_ipset_chain_name; vmid 0 is the
// datacenter). Longer ids than 20 characters are hashed there, so Validate
// keeps names short enough to stay readable.
func KernelIPSet(name string) string { return "PVEFW-0-" + name + "-v4" }

// maxIPSetID is pve-firewall's $max_iptables_ipset_name_length: 31 minus
// "PVEFW-" and "_swap".
const maxIPSetID = 31 - len("PVEFW-") - len("_swap")

// Options describe the host.
type Options struct {
	// Hostname is the node name (a DNS label); Domain makes the FQDN.
	Hostname, Domain string
	// RootPasswordHash is a crypt(3) hash ($6$ SHA-512 or $2b$/$2a$/$2y$ bcrypt).
	RootPasswordHash string
	// ZFSPool is the pool for VM disks and CSI volumes; ZFSDevices the
	// partitions the install left for it (two make a mirror).
	ZFSPool    string
	ZFSDevices []string
	// ZFSDatasets are created under the pool (democratic-csi's volumes and snapshots).
	ZFSDatasets []string
	// InternalCIDR is vmbr1's network, NATed to the internet.
	InternalCIDR netip.Prefix
	// Forwards are the public ports forwarded into the internal network.
	Forwards []Forward
	// OperatorForwards are forwarded for sources in the datacenter IP set
	// OperatorIPSet only (required with them).
	OperatorForwards []OperatorForward
	OperatorIPSet    string
	// LocalContent are the content types of the `local` storage.
	LocalContent []string
	// TLSCert and TLSKey (PEM) replace pveproxy's self-signed certificate,
	// so the CLI can pin the one it made (see NewCertificate).
	TLSCert, TLSKey []byte
	// RootAuthorizedKeys are authorized_keys lines added for root: the
	// cluster's storage driver (democratic-csi), which runs zfs and
	// targetcli on the host over SSH. Each must carry a from= option:
	// only the internal network may use them.
	RootAuthorizedKeys []string
	// TeleportAgent is the teleport.yaml of the host's Teleport SSH
	// service (teleportvm.HostAgentYAML); with it the host installs
	// Teleport from TeleportAptSource (signed by the key at
	// TeleportAptKeyURL) and runs the agent. It holds a join token's name.
	TeleportAgent                        []byte
	TeleportAptSource, TeleportAptKeyURL string
}

// TeleportAgentPath is the host agent's teleport.yaml.
const TeleportAgentPath = "/etc/teleport.yaml"

// TeleportAgentConfig finds the host agent's teleport.yaml in user data
// rendered by Render; the sandbox runs the agent it describes.
func TeleportAgentConfig(userData []byte) ([]byte, bool) {
	var doc cloudConfig
	if err := yaml.Unmarshal(userData, &doc); err != nil {
		return nil, false
	}
	for _, f := range doc.WriteFiles {
		if f.Path == TeleportAgentPath {
			return []byte(f.Content), true
		}
	}
	return nil, false
}

// RootAuthorizedKeysPath is root's authorized_keys; the user data appends
// to it (cloud-init's ssh module, later in the same boot, keeps lines it
// did not write).
const RootAuthorizedKeysPath = "/root/.ssh/authorized_keys"

// TLS paths on the host, installed into /etc/pve/local by the script.
const (
	TLSCertPath = "/etc/rawkode-cloud/pveproxy-ssl.pem"
	TLSKeyPath  = "/etc/rawkode-cloud/pveproxy-ssl.key"
)

// NewCertificate makes the host's API certificate: self-signed, like the
// one Proxmox would make, but made here so that its only copy outside the
// host is in this process and the API client can pin it.
func NewCertificate(fqdn string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: fqdn},
		DNSNames:     []string{fqdn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// Defaults of the second design document.
const (
	DefaultZFSPool  = "vmdata"
	DefaultHAProxy  = "10.10.0.3"
	DefaultTeleport = "10.10.0.2"
)

// DefaultForwards: web traffic to the HAProxy VM, Teleport's SSH proxy and
// reverse tunnel to the Teleport VM (the document's troubleshooting: tsh
// times out on 3023 without them).
func DefaultForwards() []Forward {
	h, t := netip.MustParseAddr(DefaultHAProxy), netip.MustParseAddr(DefaultTeleport)
	return []Forward{{80, h}, {443, h}, {3023, t}, {3024, t}}
}

// WithDefaults fills what is empty.
func (o Options) WithDefaults() Options {
	if o.ZFSPool == "" {
		o.ZFSPool = DefaultZFSPool
	}
	if o.ZFSDatasets == nil {
		o.ZFSDatasets = []string{"k8s-csi", "k8s-csi-snaps"}
	}
	if !o.InternalCIDR.IsValid() {
		o.InternalCIDR = netip.MustParsePrefix("10.10.0.0/24")
	}
	if o.Forwards == nil {
		o.Forwards = DefaultForwards()
	}
	if o.LocalContent == nil {
		// import (PVE ≥ 8.4) holds downloaded disk images, iso the cidata
		// ISOs; snippets stays for hand-made VMs, images for cloud-init drives.
		o.LocalContent = []string{"iso", "vztmpl", "snippets", "import", "backup", "images"}
	}
	return o
}

var (
	labelRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	domainRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
	hashRE   = regexp.MustCompile(`^\$(6|2[aby])\$[./0-9A-Za-z$=,]+$`)
	deviceRE = regexp.MustCompile(`^/dev/[A-Za-z0-9][A-Za-z0-9._:/+-]*$`)
	nameRE   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]*$`)
	ipsetRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]+$`) // pve-firewall's $ipset_name_pattern
	// Inert in the shell environment file: no quotes, no expansions.
	aptSourceRE = regexp.MustCompile(`^https://[A-Za-z0-9./_-]+( [A-Za-z0-9./_-]+)+$`)
	keyURLRE    = regexp.MustCompile(`^https://[A-Za-z0-9./_-]+$`)
)

var contentTypes = map[string]bool{"images": true, "rootdir": true, "vztmpl": true, "iso": true, "backup": true, "snippets": true, "import": true}

// Validate reports every problem at once. Values end up in a shell
// environment file, so each is held to a shape that is inert there.
func (o Options) Validate() error {
	var errs []error
	if !labelRE.MatchString(o.Hostname) {
		errs = append(errs, fmt.Errorf("host name %q is not a lowercase DNS label", o.Hostname))
	}
	if !domainRE.MatchString(o.Domain) {
		errs = append(errs, fmt.Errorf("domain %q is not a lowercase DNS name", o.Domain))
	}
	if !hashRE.MatchString(o.RootPasswordHash) {
		errs = append(errs, errors.New("root password hash is not a SHA-512 or bcrypt crypt(3) hash"))
	}
	if !nameRE.MatchString(o.ZFSPool) {
		errs = append(errs, fmt.Errorf("ZFS pool name %q is not valid", o.ZFSPool))
	}
	if len(o.ZFSDevices) == 0 {
		errs = append(errs, errors.New("no device for the ZFS pool"))
	}
	for _, d := range o.ZFSDevices {
		if !deviceRE.MatchString(d) || strings.Contains(d, "..") {
			errs = append(errs, fmt.Errorf("ZFS device %q is not a device path under /dev", d))
		}
	}
	for _, ds := range o.ZFSDatasets {
		if !nameRE.MatchString(ds) {
			errs = append(errs, fmt.Errorf("ZFS dataset name %q is not valid", ds))
		}
	}
	if !o.InternalCIDR.IsValid() || !o.InternalCIDR.Addr().Is4() || o.InternalCIDR.Masked() != o.InternalCIDR {
		errs = append(errs, fmt.Errorf("internal network %s is not an IPv4 network address", o.InternalCIDR))
	}
	seen := map[int]bool{}
	for _, f := range o.Forwards {
		if f.Port < 1 || f.Port > 65535 || seen[f.Port] {
			errs = append(errs, fmt.Errorf("forwarded port %d is out of range or repeated", f.Port))
		}
		seen[f.Port] = true
		if !o.InternalCIDR.Contains(f.To) {
			errs = append(errs, fmt.Errorf("port %d is forwarded to %s, outside the internal network %s", f.Port, f.To, o.InternalCIDR))
		}
	}
	for _, f := range o.OperatorForwards {
		if f.Port < 1 || f.Port > 65535 || seen[f.Port] {
			errs = append(errs, fmt.Errorf("operator forward port %d is out of range or repeated", f.Port))
		}
		seen[f.Port] = true
		if !o.InternalCIDR.Contains(f.To.Addr()) || f.To.Port() == 0 {
			errs = append(errs, fmt.Errorf("port %d is forwarded to %s, not an address and port in the internal network %s", f.Port, f.To, o.InternalCIDR))
		}
	}
	if len(o.OperatorForwards) > 0 || o.OperatorIPSet != "" {
		if !ipsetRE.MatchString(o.OperatorIPSet) || len("0-"+o.OperatorIPSet+"-v4") > maxIPSetID {
			errs = append(errs, fmt.Errorf("operator IP set name %q is not a PVE IP set name of at most %d characters", o.OperatorIPSet, maxIPSetID-len("0--v4")))
		}
	}
	for _, line := range o.RootAuthorizedKeys {
		_, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
		switch {
		case err != nil || len(rest) > 0 || strings.ContainsAny(line, "\r\n"):
			errs = append(errs, fmt.Errorf("root authorized key %.40q… is not one authorized_keys line", line))
		case !slices.ContainsFunc(options, func(o string) bool { return strings.HasPrefix(o, "from=") }):
			errs = append(errs, fmt.Errorf("root authorized key %.40q… has no from= restriction", line))
		}
	}
	if len(o.TeleportAgent) > 0 {
		if !aptSourceRE.MatchString(o.TeleportAptSource) || !keyURLRE.MatchString(o.TeleportAptKeyURL) {
			errs = append(errs, fmt.Errorf("the Teleport agent needs an https apt source and key URL (got %q, %q)", o.TeleportAptSource, o.TeleportAptKeyURL))
		}
	}
	if (len(o.TLSCert) == 0) != (len(o.TLSKey) == 0) {
		errs = append(errs, errors.New("TLS certificate and key go together"))
	}
	for _, c := range o.LocalContent {
		if !contentTypes[c] {
			errs = append(errs, fmt.Errorf("unknown storage content type %q", c))
		}
	}
	return errors.Join(errs...)
}

// env is the settings file the script sources: KEY='value' lines.
func (o Options) env() string {
	forwards := make([]string, 0, len(o.Forwards))
	fw := append([]Forward(nil), o.Forwards...)
	sort.Slice(fw, func(i, j int) bool { return fw[i].Port < fw[j].Port })
	for _, f := range fw {
		forwards = append(forwards, strconv.Itoa(f.Port)+"="+f.To.String())
	}
	opFw := append([]OperatorForward(nil), o.OperatorForwards...)
	sort.Slice(opFw, func(i, j int) bool { return opFw[i].Port < opFw[j].Port })
	operator := make([]string, 0, len(opFw))
	for _, f := range opFw {
		operator = append(operator, strconv.Itoa(f.Port)+"="+f.To.String())
	}
	kernelSet := ""
	if o.OperatorIPSet != "" {
		kernelSet = KernelIPSet(o.OperatorIPSet)
	}
	vdev := ""
	if len(o.ZFSDevices) == 2 {
		vdev = "mirror"
	}
	lines := [][2]string{
		{"HOST_NAME", o.Hostname},
		{"HOST_FQDN", o.Hostname + "." + o.Domain},
		{"ZFS_POOL", o.ZFSPool},
		{"ZFS_VDEV", vdev},
		{"ZFS_DEVICES", strings.Join(o.ZFSDevices, " ")},
		{"ZFS_DATASETS", strings.Join(o.ZFSDatasets, " ")},
		{"INTERNAL_CIDR", o.InternalCIDR.String()},
		{"PORT_FORWARDS", strings.Join(forwards, " ")},
		{"OPERATOR_IPSET", kernelSet},
		{"OPERATOR_FORWARDS", strings.Join(operator, " ")},
		{"LOCAL_CONTENT", strings.Join(o.LocalContent, ",")},
	}
	if len(o.TeleportAgent) > 0 {
		lines = append(lines, [2]string{"TELEPORT_APT", o.TeleportAptSource}, [2]string{"TELEPORT_APT_KEY", o.TeleportAptKeyURL})
	}
	var b strings.Builder
	b.WriteString("# Written by rawkode-cloud; read by " + ScriptPath + ".\n")
	for _, l := range lines {
		fmt.Fprintf(&b, "%s='%s'\n", l[0], l[1])
	}
	return b.String()
}

const stage2Unit = `[Unit]
Description=rawkode-cloud: install Proxmox VE (after the reboot into its kernel)
Wants=network-online.target
After=network-online.target
ConditionPathExists=!/var/lib/rawkode-cloud/ready

[Service]
Type=oneshot
ExecStart=` + ScriptPath + ` stage2
TimeoutStartSec=1h

[Install]
WantedBy=multi-user.target
`

const natUnit = `[Unit]
Description=rawkode-cloud: NAT and port forwards for the internal network
Wants=network-online.target
After=network-online.target pve-firewall.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=` + ScriptPath + ` nat

[Install]
WantedBy=multi-user.target
`

const operatorUnit = `[Unit]
Description=rawkode-cloud: operator-only forwards (sources in the operator IP set)
Wants=network-online.target
After=network-online.target pve-firewall.service rawkode-host-nat.service

[Service]
# It waits for pve-firewall to make the ipset its rules match on: simple,
# so that the wait never holds up the boot.
Type=simple
RemainAfterExit=yes
ExecStart=` + ScriptPath + ` operator-forwards
Restart=on-failure
RestartSec=10

[Install]
WantedBy=multi-user.target
`

type writeFile struct {
	Path        string `yaml:"path"`
	Owner       string `yaml:"owner"`
	Permissions string `yaml:"permissions"`
	Content     string `yaml:"content"`
	Append      bool   `yaml:"append,omitempty"`
}

type chpasswdUser struct {
	Name     string `yaml:"name"`
	Password string `yaml:"password"`
	Type     string `yaml:"type"`
}

type chpasswd struct {
	Expire bool           `yaml:"expire"`
	Users  []chpasswdUser `yaml:"users"`
}

type cloudConfig struct {
	Hostname       string      `yaml:"hostname"`
	FQDN           string      `yaml:"fqdn"`
	ManageEtcHosts bool        `yaml:"manage_etc_hosts"`
	SSHPwauth      bool        `yaml:"ssh_pwauth"`
	DisableRoot    bool        `yaml:"disable_root"`
	Chpasswd       chpasswd    `yaml:"chpasswd"`
	WriteFiles     []writeFile `yaml:"write_files"`
	RunCmd         [][]string  `yaml:"runcmd"`
}

// Render returns the #cloud-config user data.
func Render(opts Options) ([]byte, error) {
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("render Proxmox host user data: %w", err)
	}
	doc := cloudConfig{
		Hostname: opts.Hostname,
		FQDN:     opts.Hostname + "." + opts.Domain,
		// The script writes /etc/hosts: Proxmox needs the name on the
		// public address, where cloud-init would put 127.0.1.1.
		ManageEtcHosts: false,
		SSHPwauth:      false,
		DisableRoot:    true,
		Chpasswd: chpasswd{Expire: false, Users: []chpasswdUser{
			{Name: "root", Password: opts.RootPasswordHash, Type: "hash"},
		}},
		WriteFiles: []writeFile{
			{Path: EnvPath, Owner: "root:root", Permissions: "0600", Content: opts.env()},
			{Path: ScriptPath, Owner: "root:root", Permissions: "0700", Content: script},
			{Path: "/etc/sysctl.d/90-rawkode-cloud.conf", Owner: "root:root", Permissions: "0644",
				Content: "# The host routes the internal network (NAT and port forwards).\nnet.ipv4.ip_forward = 1\n"},
			{Path: "/etc/systemd/system/rawkode-pve-stage2.service", Owner: "root:root", Permissions: "0644", Content: stage2Unit},
			{Path: "/etc/systemd/system/rawkode-host-nat.service", Owner: "root:root", Permissions: "0644", Content: natUnit},
			{Path: "/etc/systemd/system/rawkode-host-operator-forwards.service", Owner: "root:root", Permissions: "0644", Content: operatorUnit},
		},
		RunCmd: [][]string{{ScriptPath, "stage1"}},
	}
	if len(opts.TLSCert) > 0 {
		doc.WriteFiles = append(doc.WriteFiles,
			writeFile{Path: TLSCertPath, Owner: "root:root", Permissions: "0644", Content: string(opts.TLSCert)},
			writeFile{Path: TLSKeyPath, Owner: "root:root", Permissions: "0600", Content: string(opts.TLSKey)})
	}
	if len(opts.TeleportAgent) > 0 {
		doc.WriteFiles = append(doc.WriteFiles, writeFile{Path: TeleportAgentPath, Owner: "root:root", Permissions: "0600", Content: string(opts.TeleportAgent)})
	}
	if len(opts.RootAuthorizedKeys) > 0 {
		doc.WriteFiles = append(doc.WriteFiles, writeFile{Path: RootAuthorizedKeysPath, Owner: "root:root", Permissions: "0600",
			Content: strings.Join(opts.RootAuthorizedKeys, "\n") + "\n", Append: true})
	}
	body, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("render Proxmox host user data: %w", err)
	}
	return append([]byte("#cloud-config\n"), body...), nil
}

// RootHash finds root's password hash in user data rendered by Render;
// the sandbox uses it to give its emulated host the password cloud-init
// would have set.
func RootHash(userData []byte) (string, bool) {
	var doc cloudConfig
	if err := yaml.Unmarshal(userData, &doc); err != nil {
		return "", false
	}
	for _, u := range doc.Chpasswd.Users {
		if u.Name == "root" && u.Type == "hash" {
			return u.Password, true
		}
	}
	return "", false
}

// OperatorForwardsOf reads the operator-only forwards and the datacenter
// IP set they match on back from user data rendered by Render; the sandbox
// builds its emulated host's port forwarding from what the host was given.
func OperatorForwardsOf(userData []byte) (ipset string, fw []OperatorForward, ok bool) {
	var doc cloudConfig
	if err := yaml.Unmarshal(userData, &doc); err != nil {
		return "", nil, false
	}
	for _, f := range doc.WriteFiles {
		if f.Path != EnvPath {
			continue
		}
		env := map[string]string{}
		for _, line := range strings.Split(f.Content, "\n") {
			k, v, found := strings.Cut(line, "=")
			if found && !strings.HasPrefix(k, "#") {
				env[k] = strings.Trim(v, "'")
			}
		}
		name, isSet := strings.CutPrefix(env["OPERATOR_IPSET"], "PVEFW-0-")
		name, isV4 := strings.CutSuffix(name, "-v4")
		if !isSet || !isV4 {
			return "", nil, false
		}
		for _, item := range strings.Fields(env["OPERATOR_FORWARDS"]) {
			port, to, _ := strings.Cut(item, "=")
			p, err := strconv.Atoi(port)
			ap, aerr := netip.ParseAddrPort(to)
			if err != nil || aerr != nil {
				return "", nil, false
			}
			fw = append(fw, OperatorForward{Port: p, To: ap})
		}
		return name, fw, true
	}
	return "", nil, false
}
