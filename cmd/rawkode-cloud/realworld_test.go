package main_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// realWorld is one of the ways the real services are ruder than a polite
// emulator, rehearsed through the real binary in the sandbox.
type realWorld struct {
	name   string
	faults []string
	args   []string // more provision flags
	exit   int
	// stderr and output must each contain these.
	stderr, output []string
	// ordered is whether a server order may have been sent (exit 2: never).
	check func(t *testing.T, inv map[string]any, out string)
}

func TestRealWorldFaults(t *testing.T) {
	t.Parallel()
	cases := []realWorld{
		{
			// Talos answers the apply before it leaves maintenance mode.
			name: "maintenance lingers after the apply", faults: []string{"talos.maintenance=linger"}, exit: 0,
			output: []string{"still in maintenance mode"},
		},
		{
			// A kube server of the same name from another agent is no
			// proof: never a lockdown on its word.
			name: "stale registration, agent never joins", faults: []string{"teleport.kube-server=stale", "teleport.agent=never"}, exit: 3,
			output: []string{"Teleport already lists 1 kube server(s) named", "only other agents registered under this name"},
			stderr: []string{"Teleport verification failed", "firewall open"},
		},
		{
			// The join token expires before the agent starts: renewed, the
			// old one deleted, and none left once the agent joined.
			name: "join token expires before the agent starts", faults: []string{"teleport.token=expire"}, exit: 0,
			output: []string{"Teleport join token renewed: Teleport no longer has it"},
			check: func(t *testing.T, inv map[string]any, _ string) {
				if n := inv["tokens"]; n != 0 {
					t.Errorf("join tokens left: %v", n)
				}
			},
		},
		{
			name: "Teleport identity may not create tokens", faults: []string{"teleport.permissions=deny"}, exit: 2,
			stderr: []string{`Teleport identity "rawkode-cloud"`, "create on token"},
			check:  func(t *testing.T, inv map[string]any, _ string) { mustBeEmpty(t, inv) },
		},
		{
			name: "Cloudflare token may not edit DNS", faults: []string{"cloudflare.permissions=deny"}, exit: 2,
			stderr: []string{"#dns_records:edit", "Zone / DNS / Edit"},
			check:  func(t *testing.T, inv map[string]any, _ string) { mustBeEmpty(t, inv) },
		},
		{
			name: "Infisical identity may not write", faults: []string{"infisical.permissions=deny"}, exit: 2,
			stderr: []string{"may not create secrets in project", "/rawkode-cloud/sandbox", "403", "--secrets-out"},
			check:  func(t *testing.T, inv map[string]any, _ string) { mustBeEmpty(t, inv) },
		},
		{
			// The recorded EM-I215E-NVME has two NVMe disks: a third is
			// refused before anything is ordered.
			name: "install disk the offer does not have", faults: nil, exit: 2,
			args:   []string{"--talos-install-disk", "/dev/nvme2n1"},
			stderr: []string{"talos-install-disk /dev/nvme2n1 (flag) is not a disk of offer", "/dev/nvme0n1, /dev/nvme1n1", "env RAWKODE_CLOUD_TALOS_INSTALL_DISK"},
			check:  func(t *testing.T, inv map[string]any, _ string) { mustBeEmpty(t, inv) },
		},
		{
			name: "phase-0 outage", faults: []string{"teleport.connect=unavailable"}, exit: 2,
			stderr: []string{"service unavailable", "Nothing was created"},
			check:  func(t *testing.T, inv map[string]any, _ string) { mustBeEmpty(t, inv) },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"provision", "--sandbox", "--sandbox-speed", "200", "--output", "plain"}
			for _, f := range tc.faults {
				args = append(args, "--sandbox-fault", f)
			}
			args = append(args, tc.args...)
			code, out, errOut := newIsolated(t).run(t, args...)
			if code != tc.exit {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.exit, out, errOut)
			}
			for _, w := range tc.stderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr does not say %q:\n%s", w, errOut)
				}
			}
			for _, w := range tc.output {
				if !strings.Contains(out, w) {
					t.Errorf("output does not say %q:\n%s", w, out)
				}
			}
			if tc.check != nil {
				tc.check(t, inventory(t, out), out)
			}
		})
	}
}

// inventory reads the sandbox inventory the plain output ends with.
func inventory(t *testing.T, out string) map[string]any {
	t.Helper()
	inv := map[string]any{}
	section := ""
	for _, line := range strings.Split(out, "\n") {
		trimmed := strings.TrimSpace(line)
		if i := strings.Index(trimmed, " ("); i > 0 && strings.HasSuffix(trimmed, ")") && strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "    ") {
			section = trimmed[:i]
			var n int
			_ = json.Unmarshal([]byte(strings.TrimSuffix(trimmed[i+2:], ")")), &n)
			inv[section] = n
		}
	}
	return inv
}

func mustBeEmpty(t *testing.T, inv map[string]any) {
	t.Helper()
	for k, v := range inv {
		if v != 0 {
			t.Errorf("inventory %s = %v after exit 2, want nothing", k, v)
		}
	}
}
