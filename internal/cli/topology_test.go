package cli_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The proxmox topology builds a Teleport VM of its own and registers its
// cluster there: provision neither demands teleport-proxy on it nor checks
// the metal topology's Teleport identity settings, while the metal
// topology still demands teleport-proxy with the usual exit-2 message.
func TestProvisionRequiresTeleportProxyOnMetalOnly(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "no-such-identity")
	base := []string{"provision", "--output", "plain", "--cluster-name", "demo", "--teleport-identity-file", missing}

	r := run(t, invocation{args: append(slices.Clone(base), "--topology", "proxmox", "--domain", "example.com")})
	if r.code != 2 || !strings.Contains(r.err, "scaleway-offer-id: required but not set") {
		t.Fatalf("proxmox: exit %d, want 2 naming what is still missing; stderr:\n%s", r.code, r.err)
	}
	for _, name := range []string{"teleport-proxy", "teleport-identity-file", "teleport-identity"} {
		if strings.Contains(r.err, name+":") {
			t.Errorf("proxmox: phase 0 asks about %s, which the topology does not use:\n%s", name, r.err)
		}
	}

	r = run(t, invocation{args: append(slices.Clone(base), "--topology", "metal")})
	if r.code != 2 || !strings.Contains(r.err, "teleport-proxy: required but not set; set it with flag --teleport-proxy, env RAWKODE_CLOUD_TELEPORT_PROXY") {
		t.Errorf("metal: exit %d, want 2 demanding teleport-proxy; stderr:\n%s", r.code, r.err)
	}
	if !strings.Contains(r.err, "teleport-identity-file:") {
		t.Errorf("metal: the unreadable identity file is not reported:\n%s", r.err)
	}
}

// plan lists what a real provision would still ask for: the same topology-
// aware list, so a proxmox plan never sends the user after teleport-proxy.
func TestPlanProvisionNeedsFollowTheTopology(t *testing.T) {
	t.Parallel()
	needs := func(args ...string) []string {
		t.Helper()
		r := run(t, invocation{args: append([]string{"plan", "--output", "json", "--cluster-name", "demo"}, args...)})
		if r.code != 0 {
			t.Fatalf("plan %v: exit %d\n%s", args, r.code, r.err)
		}
		var doc struct {
			ProvisionNeeds []string `json:"provision_needs"`
		}
		if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
			t.Fatalf("plan %v: %v\n%s", args, err, r.out)
		}
		return doc.ProvisionNeeds
	}
	names := func(needs []string) []string {
		var out []string
		for _, n := range needs {
			out = append(out, strings.SplitN(n, ":", 2)[0])
		}
		return out
	}
	pve := names(needs("--topology", "proxmox", "--domain", "example.com"))
	if slices.Contains(pve, "teleport-proxy") {
		t.Errorf("proxmox plan says provision needs teleport-proxy: %v", pve)
	}
	for _, want := range []string{"scaleway-offer-id", "github-client-secret", "secrets-out"} {
		if !slices.Contains(pve, want) {
			t.Errorf("proxmox plan does not say provision needs %s: %v", want, pve)
		}
	}
	if metal := names(needs()); !slices.Contains(metal, "teleport-proxy") {
		t.Errorf("metal plan does not say provision needs teleport-proxy: %v", metal)
	}
}

// The sandbox gives the proxmox topology no teleport-proxy, as its users
// give none: the sandbox runs of the topology prove nothing asks for one.
func TestSandboxGivesProxmoxNoTeleportProxy(t *testing.T) {
	t.Parallel()
	shown := func(args ...string) map[string]struct{ Value any } {
		t.Helper()
		r := run(t, invocation{args: append([]string{"config", "show", "--sandbox", "--output", "json"}, args...)})
		if r.code != 0 {
			t.Fatalf("config show %v: exit %d\n%s", args, r.code, r.err)
		}
		var out map[string]struct{ Value any }
		if err := json.Unmarshal([]byte(r.out), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if v := shown("--topology", "proxmox")["teleport-proxy"].Value; v != nil && v != "" {
		t.Errorf("proxmox: the sandbox sets teleport-proxy to %v", v)
	}
	if v := shown()["teleport-proxy"].Value; v == nil || v == "" {
		t.Error("metal: the sandbox sets no teleport-proxy")
	}
}
