package provision

import (
	"strings"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/config"
)

// Phase 0 of the proxmox topology asks for the GitHub SSO settings (and
// only there), refuses a wildcard team with the reason, and refuses node
// counts its VM plan cannot have.
func TestProxmoxPhase0Checks(t *testing.T) {
	t.Parallel()
	problems := func(set map[string]string) string {
		cfg := config.New()
		for k, v := range set {
			cfg.Set(k, v, config.FromFlag, "--"+k)
		}
		var out []string
		for _, p := range extraChecks(cfg) {
			out = append(out, p.Setting+": "+p.Message)
		}
		return strings.Join(out, "\n")
	}
	github := map[string]string{config.GitHubOrg: "example-org", config.GitHubTeam: "platform-admins",
		config.GitHubClientID: "Iv1.0123", config.GitHubClientSecret: "s3cret"}
	proxmox := func(extra map[string]string) map[string]string {
		m := map[string]string{config.Topology: config.TopologyProxmox, config.Domain: "example.com", config.SecretsOut: "/tmp/x"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	if got := problems(map[string]string{config.SecretsOut: "/tmp/x"}); strings.Contains(got, "github") {
		t.Errorf("metal asks for GitHub settings:\n%s", got)
	}
	got := problems(proxmox(nil))
	for _, name := range []string{config.GitHubOrg, config.GitHubTeam, config.GitHubClientID, config.GitHubClientSecret} {
		if !strings.Contains(got, name+": ") {
			t.Errorf("proxmox without %s not refused:\n%s", name, got)
		}
	}
	if got := problems(proxmox(github)); got != "" {
		t.Errorf("complete proxmox settings refused:\n%s", got)
	}
	wild := proxmox(github)
	wild[config.GitHubTeam] = "*"
	if got := problems(wild); !strings.Contains(got, "exact slug") {
		t.Errorf("wildcard team not refused with the reason:\n%s", got)
	}
	counts := proxmox(github)
	counts[config.ControlPlanes], counts[config.Workers] = "5", "2"
	if got := problems(counts); !strings.Contains(got, config.ControlPlanes) || !strings.Contains(got, config.Workers) {
		t.Errorf("node counts the VM plan cannot have not refused:\n%s", got)
	}
}

// Only the metal topology's Teleport settings a user gave are reported as
// unused by the proxmox topology; defaults, the sandbox's values and the
// metal topology report nothing.
func TestUnusedSettings(t *testing.T) {
	t.Parallel()
	cfg := config.New()
	cfg.Set(config.Topology, config.TopologyProxmox, config.FromFlag, "--topology")
	cfg.Set(config.TeleportProxy, "teleport.example.com:443", config.FromEnv, "RAWKODE_CLOUD_TELEPORT_PROXY")
	cfg.Set(config.TeleportIdentity, "sandbox identity", config.FromSandbox, "")
	if got := UnusedSettings(cfg); strings.Join(got, ",") != config.TeleportProxy {
		t.Errorf("proxmox: unused %v, want [%s]", got, config.TeleportProxy)
	}
	cfg.Set(config.Topology, config.TopologyMetal, config.FromFlag, "--topology")
	if got := UnusedSettings(cfg); len(got) != 0 {
		t.Errorf("metal: unused %v, want none", got)
	}
}
