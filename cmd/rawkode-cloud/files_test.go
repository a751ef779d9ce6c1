package main_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/golden"
)

// isolated runs the binary with HOME, TMPDIR and the working directory each
// an empty directory of their own, and returns what each holds afterwards.
type isolated struct {
	home, tmp, cwd string
}

func newIsolated(t *testing.T) isolated {
	t.Helper()
	root := t.TempDir()
	iso := isolated{home: filepath.Join(root, "home"), tmp: filepath.Join(root, "tmp"), cwd: filepath.Join(root, "cwd")}
	for _, d := range []string{iso.home, iso.tmp, iso.cwd} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return iso
}

func (iso isolated) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Dir = iso.cwd
	cmd.Env = []string{"HOME=" + iso.home, "TMPDIR=" + iso.tmp, "PATH=" + os.Getenv("PATH"),
		"XDG_CONFIG_HOME=" + filepath.Join(iso.home, ".config"), "XDG_CACHE_HOME=" + filepath.Join(iso.home, ".cache")}
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%v did not end", args)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// files lists every file and directory under the three directories,
// relative to the isolation root, except those under allowed.
func (iso isolated) files(t *testing.T, allowed ...string) []string {
	t.Helper()
	var out []string
	for _, d := range []string{iso.home, iso.tmp, iso.cwd} {
		err := filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p == d {
				return nil
			}
			for _, a := range allowed {
				if p == a || strings.HasPrefix(p, a+string(filepath.Separator)) {
					return nil
				}
			}
			rel, _ := filepath.Rel(filepath.Dir(d), p)
			out = append(out, rel)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(out)
	return out
}

// TestNoFileWrittenUnlessAsked: a sandbox provisioning (success or failure)
// writes nothing at all; `plan --render DIR` writes only into DIR, with the
// files holding secrets at 0600.
func TestNoFileWrittenUnlessAsked(t *testing.T) {
	t.Parallel()
	binary(t)
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"provision success", []string{"provision", "--sandbox", "--sandbox-speed", fast, "--output", "json"}, 0},
		{"provision failure", []string{"provision", "--sandbox", "--sandbox-speed", fast, "--sandbox-fault", "talos.lockdown=error"}, 1},
		{"provision interrupted by a bad setting", []string{"provision", "--sandbox", "--talos-version", "v9.9.9"}, 2},
		{"plan", []string{"plan", "--cluster-name", "demo"}, 0},
		{"config show", []string{"config", "show"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			iso := newIsolated(t)
			code, _, stderr := iso.run(t, tc.args...)
			if code != tc.want {
				t.Fatalf("exit %d, want %d\n%s", code, tc.want, stderr)
			}
			if left := iso.files(t); len(left) > 0 {
				t.Errorf("files created although none were asked for: %v", left)
			}
		})
	}

	t.Run("plan --render", func(t *testing.T) {
		t.Parallel()
		iso := newIsolated(t)
		dir := filepath.Join(iso.cwd, "artifacts")
		code, out, stderr := iso.run(t, "plan", "--cluster-name", "demo", "--render", dir, "--output", "json")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		if left := iso.files(t, dir); len(left) > 0 {
			t.Errorf("files created outside --render %s: %v", dir, left)
		}
		var doc struct {
			Rendered []struct {
				Path   string `json:"path"`
				Mode   string `json:"mode"`
				Secret bool   `json:"secret"`
			} `json:"rendered"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("plan output is not JSON: %v\n%s", err, out)
		}
		if len(doc.Rendered) == 0 {
			t.Fatal("nothing rendered")
		}
		secrets := 0
		for _, f := range doc.Rendered {
			p := f.Path
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			st, err := os.Stat(p)
			if err != nil {
				t.Errorf("rendered file %s: %v", f.Path, err)
				continue
			}
			if f.Secret {
				secrets++
				if st.Mode().Perm() != 0o600 {
					t.Errorf("%s holds secrets but has mode %o, want 600", f.Path, st.Mode().Perm())
				}
			}
		}
		// The machine configs and the talosconfig carry the PKI.
		if secrets < 2 {
			t.Errorf("only %d rendered files marked secret: %+v", secrets, doc.Rendered)
		}
		// Every file on disk is one the output lists.
		entries, _ := os.ReadDir(dir)
		if len(entries) != len(doc.Rendered) {
			t.Errorf("%d files in %s, %d listed", len(entries), dir, len(doc.Rendered))
		}
	})
}

// plan --topology proxmox --render writes the host's user data and every
// file the VMs boot with; those holding key material (machine configs, the
// GitHub connector with its client secret) are 0600 and marked secret.
func TestPlanRendersTheProxmoxTopology(t *testing.T) {
	t.Parallel()
	iso := newIsolated(t)
	dir := filepath.Join(iso.cwd, "proxmox")
	code, out, stderr := iso.run(t, "plan", "--topology", "proxmox", "--cluster-name", "demo", "--domain", "example.com",
		"--github-org", "example-org", "--github-team", "platform-admins", "--github-client-id", "Iv1.0123",
		"--github-client-secret", "plan-github-client-secret-0000", "--render", dir, "--output", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var doc struct {
		Rendered []struct {
			Path   string `json:"path"`
			Mode   string `json:"mode"`
			Secret bool   `json:"secret"`
		} `json:"rendered"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("plan output is not JSON: %v\n%s", err, out)
	}
	var listing strings.Builder
	for _, f := range doc.Rendered {
		st, err := os.Stat(f.Path)
		if err != nil {
			t.Errorf("rendered file %s: %v", f.Path, err)
			continue
		}
		if want := map[bool]os.FileMode{true: 0o600, false: 0o644}[f.Secret]; st.Mode().Perm() != want {
			t.Errorf("%s: mode %o, want %o", f.Path, st.Mode().Perm(), want)
		}
		data, _ := os.ReadFile(f.Path)
		if !f.Secret && strings.Contains(string(data), "plan-github-client-secret") {
			t.Errorf("%s holds the GitHub client secret but is not marked secret", f.Path)
		}
		fmt.Fprintf(&listing, "%s %s secret=%v\n", filepath.Base(f.Path), f.Mode, f.Secret)
		// The host forwards the Talos VMs' APIs to sources in the operator
		// IP set only: the rules the CLI opens through the API.
		if filepath.Base(f.Path) == "proxmox-host-user-data.yaml" {
			for _, want := range []string{"OPERATOR_IPSET='PVEFW-0-operator-v4'",
				"OPERATOR_FORWARDS='6443=10.10.0.10:6443 6444=10.10.0.11:6443 6445=10.10.0.12:6443 50000=10.10.0.10:50000 50001=10.10.0.11:50000 50002=10.10.0.12:50000'",
				"rawkode-host-operator-forwards.service"} {
				if !strings.Contains(string(data), want) {
					t.Errorf("the host's user data lacks %s", want)
				}
			}
		}
	}
	if strings.Contains(out, "plan-github-client-secret") {
		t.Error("plan's output shows the GitHub client secret")
	}
	golden.Compare(t, "testdata/plan-proxmox-render.txt", []byte(listing.String()))
}

// A plan needs no credentials: without the GitHub SSO settings the proxmox
// plan still renders every file, with placeholders it lists, and says what
// provision would still need.
func TestPlanProxmoxWithoutGitHubSettings(t *testing.T) {
	t.Parallel()
	iso := newIsolated(t)
	dir := filepath.Join(iso.cwd, "proxmox")
	code, out, stderr := iso.run(t, "plan", "--topology", "proxmox", "--cluster-name", "demo", "--domain", "example.com",
		"--render", dir, "--output", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var doc struct {
		Rendered       []struct{ Path string } `json:"rendered"`
		Placeholders   map[string]string       `json:"placeholders"`
		ProvisionNeeds []string                `json:"provision_needs"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("plan JSON: %v\n%s", err, out)
	}
	for _, name := range []string{"github-org", "github-team", "github-client-id", "github-client-secret"} {
		if _, ok := doc.Placeholders[name]; !ok {
			t.Errorf("no placeholder listed for %s: %v", name, doc.Placeholders)
		}
		if !slices.ContainsFunc(doc.ProvisionNeeds, func(n string) bool { return strings.HasPrefix(n, name+":") }) {
			t.Errorf("provision needs do not name %s: %v", name, doc.ProvisionNeeds)
		}
	}
	if len(doc.Rendered) < 2 {
		t.Errorf("rendered %d files, want the host's and the VMs'", len(doc.Rendered))
	}
}
