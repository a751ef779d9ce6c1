package proxmoxhost_test

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/golden"
	"github.com/rawkode/rawkode-cloud/internal/proxmoxhost"
)

// A fixed bcrypt hash (of "sandbox-root-password"), so the golden file is stable.
const hash = "$2a$10$0nA0kjV6vW4K8F3wG1n6ZOmJ3rcbXJZkS2G2cT0b2mVQkLhV1vYqC"

func goldenOptions() proxmoxhost.Options {
	return proxmoxhost.Options{Hostname: "pve-demo", Domain: "example.com", RootPasswordHash: hash,
		ZFSDevices:         []string{"/dev/nvme0n1p4", "/dev/nvme1n1p4"},
		RootAuthorizedKeys: []string{csiKey},
		OperatorIPSet:      "operator", OperatorForwards: []proxmoxhost.OperatorForward{
			{Port: 50000, To: netip.MustParseAddrPort("10.10.0.10:50000")},
			{Port: 6443, To: netip.MustParseAddrPort("10.10.0.10:6443")},
		},
		TeleportAgent:     []byte("version: v3\nteleport:\n  nodename: pve-demo\n"),
		TeleportAptSource: "https://apt.releases.teleport.dev/debian bookworm stable/v18",
		TeleportAptKeyURL: "https://apt.releases.teleport.dev/gpg"}
}

// The sandbox builds its host's forwarding from the user data: what
// Render writes must read back unchanged.
func TestOperatorForwardsReadBack(t *testing.T) {
	t.Parallel()
	data, err := proxmoxhost.Render(goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	set, fw, ok := proxmoxhost.OperatorForwardsOf(data)
	if !ok || set != "operator" || len(fw) != 2 || fw[0].Port != 6443 || fw[1].To.String() != "10.10.0.10:50000" {
		t.Fatalf("OperatorForwardsOf = %q %v %v", set, fw, ok)
	}
	if proxmoxhost.KernelIPSet("operator") != "PVEFW-0-operator-v4" {
		t.Fatal(proxmoxhost.KernelIPSet("operator"))
	}
}

// A fixed democratic-csi key line, as the CLI makes them.
const csiKey = `from="10.10.0.0/24",no-agent-forwarding,no-port-forwarding,no-X11-forwarding,no-pty,no-user-rc ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq0ncf2ZKWqjXEBXj1aMvnGQmmC6XAz4ZB7c0kNDTKn democratic-csi@pve-demo`

func TestRenderGolden(t *testing.T) {
	t.Parallel()
	data, err := proxmoxhost.Render(goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	golden.Compare(t, "testdata/user-data.yaml", data)
	if h, ok := proxmoxhost.RootHash(data); !ok || h != hash {
		t.Fatalf("RootHash = %q %v", h, ok)
	}
	if a, ok := proxmoxhost.TeleportAgentConfig(data); !ok || string(a) != string(goldenOptions().TeleportAgent) {
		t.Fatalf("TeleportAgentConfig = %q %v", a, ok)
	}
}

func TestCloudInitSchemaAcceptsUserData(t *testing.T) {
	t.Parallel()
	bin := requireTool(t, "cloud-init")
	data, err := proxmoxhost.Render(goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "user-data")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "schema", "-c", file).CombinedOutput(); err != nil {
		t.Fatalf("cloud-init schema rejected the user data: %v\n%s", err, out)
	}
}

func TestShellcheckAcceptsScript(t *testing.T) {
	t.Parallel()
	bin := requireTool(t, "shellcheck")
	cmd := exec.Command(bin, "--shell=bash", "-")
	cmd.Stdin = strings.NewReader(proxmoxhost.Script())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("shellcheck rejected the script: %v\n%s", err, out)
	}
}

// The settings file is sourced by bash: every value must survive that
// unchanged, and the script must see exactly the rendered settings.
func TestEnvironmentFileSourcesCleanly(t *testing.T) {
	t.Parallel()
	bash := requireTool(t, "bash")
	data, err := proxmoxhost.Render(goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	env := between(string(data), "# Written by rawkode-cloud", "\n    - path:")
	env = strings.ReplaceAll(env, "\n            ", "\n")
	out, err := exec.Command(bash, "-c", "set -eu; "+env+"\necho \"$PORT_FORWARDS|$ZFS_VDEV $ZFS_DEVICES|$LOCAL_CONTENT|$OPERATOR_IPSET $OPERATOR_FORWARDS|$TELEPORT_APT\"").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := "80=10.10.0.3 443=10.10.0.3 3023=10.10.0.2 3024=10.10.0.2|mirror /dev/nvme0n1p4 /dev/nvme1n1p4|iso,vztmpl,snippets,import,backup,images|PVEFW-0-operator-v4 6443=10.10.0.10:6443 50000=10.10.0.10:50000|https://apt.releases.teleport.dev/debian bookworm stable/v18\n"
	if string(out) != want {
		t.Fatalf("got %q, want %q", out, want)
	}
}

func between(s, from, to string) string {
	i := strings.Index(s, from)
	j := strings.Index(s[i:], to)
	return s[i : i+j]
}

func TestValidateRefusesWhatTheShellWouldRun(t *testing.T) {
	t.Parallel()
	for name, mutate := range map[string]func(*proxmoxhost.Options){
		"hostname with quote": func(o *proxmoxhost.Options) { o.Hostname = "pve'; reboot" },
		"device outside /dev": func(o *proxmoxhost.Options) { o.ZFSDevices = []string{"/dev/../etc/passwd"} },
		"plain password":      func(o *proxmoxhost.Options) { o.RootPasswordHash = "hunter2" },
		"no ZFS device":       func(o *proxmoxhost.Options) { o.ZFSDevices = nil },
		"forward outside": func(o *proxmoxhost.Options) {
			o.Forwards = []proxmoxhost.Forward{{Port: 80, To: mustAddr("192.168.1.1")}}
		},
		"bad content": func(o *proxmoxhost.Options) { o.LocalContent = []string{"iso", "exe"} },
		"operator forward on a public port": func(o *proxmoxhost.Options) {
			o.OperatorForwards = append(o.OperatorForwards, proxmoxhost.OperatorForward{Port: 443, To: netip.MustParseAddrPort("10.10.0.11:6443")})
		},
		"operator forward outside": func(o *proxmoxhost.Options) {
			o.OperatorForwards = []proxmoxhost.OperatorForward{{Port: 50001, To: netip.MustParseAddrPort("192.168.1.1:50000")}}
		},
		"operator set name pve-firewall would hash": func(o *proxmoxhost.Options) { o.OperatorIPSet = "operator-forwards-long" },
		"operator forwards without a set":           func(o *proxmoxhost.Options) { o.OperatorIPSet = "" },
		"unrestricted key": func(o *proxmoxhost.Options) {
			o.RootAuthorizedKeys = []string{csiKey[strings.Index(csiKey, "ssh-ed25519"):]}
		},
		"two lines in one key": func(o *proxmoxhost.Options) { o.RootAuthorizedKeys = []string{csiKey + "\n" + csiKey} },
		"not a key":            func(o *proxmoxhost.Options) { o.RootAuthorizedKeys = []string{`from="10.10.0.0/24" nonsense`} },
		"agent without a repo": func(o *proxmoxhost.Options) { o.TeleportAptSource = "" },
		"quote in the repo":    func(o *proxmoxhost.Options) { o.TeleportAptSource = "https://x.example/debian bookworm'; reboot" },
	} {
		opts := goldenOptions()
		mutate(&opts)
		if _, err := proxmoxhost.Render(opts); err == nil {
			t.Errorf("%s: rendered without complaint", name)
		}
	}
}

func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (CI installs it: apt-get install -y cloud-init shellcheck)", name)
	}
	return path
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
