package teleportvm_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/teleportvm"
)

func TestHostAgentRoundTrip(t *testing.T) {
	t.Parallel()
	a := teleportvm.HostAgent{NodeName: "pve-demo", AuthServer: netip.MustParseAddrPort("10.10.0.2:3025"),
		Token: strings.Repeat("ab", 16), Labels: teleportvm.HostRoleLabel}
	data, err := teleportvm.HostAgentYAML(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"auth_server: 10.10.0.2:3025", "method: token", "nodename: pve-demo"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("teleport.yaml lacks %q:\n%s", want, data)
		}
	}
	back, err := teleportvm.ParseHostAgent(data)
	if err != nil || back.Token != a.Token || back.AuthServer != a.AuthServer || back.NodeName != a.NodeName || back.Labels["rawkode-cloud/role"] != "proxmox-host" {
		t.Fatalf("read back %+v, %v", back, err)
	}
	for name, bad := range map[string]teleportvm.HostAgent{
		"guessable token": {NodeName: "pve-demo", AuthServer: a.AuthServer, Token: "secret"},
		"no auth server":  {NodeName: "pve-demo", Token: a.Token},
		"bad node name":   {NodeName: "PVE demo", AuthServer: a.AuthServer, Token: a.Token},
	} {
		if _, err := teleportvm.HostAgentYAML(bad); err == nil {
			t.Errorf("%s: rendered", name)
		}
	}
	if _, err := teleportvm.ParseHostAgent([]byte("version: v3\nssh_service:\n  enabled: false\n")); err == nil {
		t.Error("a config without the SSH service was taken for an agent")
	}
}

// The Teleport VM's teleport.yaml serves the Proxmox UI through the proxy's
// reverse tunnel: what the sandbox reads to register the app.
func TestServedAppsOfTheTeleportVM(t *testing.T) {
	t.Parallel()
	cfg, err := teleportvm.TeleportYAML(teleportvm.Config{Domain: "example.com", NodeName: "teleport",
		ProxmoxURL: "https://10.10.0.1:8006", Logins: []string{"root"}})
	if err != nil {
		t.Fatal(err)
	}
	apps, tunnel, err := teleportvm.ServedApps(cfg)
	if err != nil || !tunnel || len(apps) != 1 || apps[0].Name != teleportvm.ProxmoxApp || apps[0].URI != "https://10.10.0.1:8006" || apps[0].PublicAddr != "proxmox.example.com" {
		t.Fatalf("apps %+v tunnel %v err %v", apps, tunnel, err)
	}
	noTunnel := strings.Replace(string(cfg), "tunnel_listen_addr:", "#tunnel_listen_addr:", 1)
	if _, tunnel, _ := teleportvm.ServedApps([]byte(noTunnel)); tunnel {
		t.Error("a proxy without tunnel_listen_addr counted as having a reverse tunnel")
	}
}
