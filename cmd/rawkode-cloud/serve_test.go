package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// world is a `sandbox serve` process: one local cloud that persists
// between the commands a test runs against it.
type world struct {
	t      *testing.T
	config string
	url    string
	home   string
}

// serve starts `rawkode-cloud sandbox serve` and waits until it says it
// serves. The cleanup stops it with SIGINT, as a user's Ctrl-C, and checks
// that it exits 0.
func serve(t *testing.T, extra ...string) *world {
	t.Helper()
	dir := t.TempDir()
	w := &world{t: t, config: filepath.Join(dir, "sandbox.yaml"), home: t.TempDir()}
	// The world must outlive every command a test runs against it, however
	// slow a loaded machine makes them: only a hung test's own deadline
	// should end it.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel)
	args := append([]string{"sandbox", "serve", "--write-config", w.config, "--output", "json", "--sandbox-speed", "400"}, extra...)
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = []string{"HOME=" + w.home, "PATH=" + os.Getenv("PATH")}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan map[string]any, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				lines <- ev
			}
		}
	}()
	select {
	case ev, ok := <-lines:
		if !ok || ev["type"] != "serving" {
			t.Fatalf("sandbox serve did not start: %v\nstderr:\n%s", ev, stderr.String())
		}
		w.url, _ = ev["url"].(string)
	case <-ctx.Done():
		t.Fatal("sandbox serve never said it serves")
	}
	t.Cleanup(func() {
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Errorf("SIGINT: %v", err)
		}
		for range lines {
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("sandbox serve after Ctrl-C: %v\nstderr:\n%s", err, stderr.String())
		}
	})
	return w
}

// result is one finished command.
type result struct {
	code     int
	out, err string
}

// run runs one ordinary command against the world: --config and no --sandbox.
func (w *world) run(args ...string) result {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(w.t), append(args, "--config", w.config)...)
	cmd.Env = []string{"HOME=" + w.home, "PATH=" + os.Getenv("PATH")}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{out: out.String(), err: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		w.t.Fatalf("%v: %v", args, err)
	}
	return r
}

// must runs a command that has to exit with code.
func (w *world) must(code int, args ...string) result {
	w.t.Helper()
	r := w.run(args...)
	if r.code != code {
		w.t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, code, r.out, r.err)
	}
	return r
}

// inventory is the world's inventory through `sandbox inventory`: its
// lists by name (objects such as "kubernetes" are left out).
func (w *world) inventory() map[string][]map[string]any {
	w.t.Helper()
	r := w.must(0, "sandbox", "inventory", "--output", "json")
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.out), &raw); err != nil {
		w.t.Fatalf("inventory is not JSON: %v\n%s", err, r.out)
	}
	inv := map[string][]map[string]any{}
	for k, v := range raw {
		var list []map[string]any
		if json.Unmarshal(v, &list) == nil {
			inv[k] = list
		}
	}
	return inv
}

func TestServedSandboxKeepsTheWorldBetweenCommands(t *testing.T) {
	t.Parallel()
	w := serve(t)
	if fi, err := os.Stat(w.config); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v, mode %v; want 0600", err, fi)
	}
	if inv := w.inventory(); len(inv["servers"]) != 0 {
		t.Fatalf("a fresh world holds servers: %v", inv["servers"])
	}

	r := w.must(0, "provision", "--cluster-name", "persist", "--output", "json")
	if !strings.Contains(r.out, "served sandbox at "+w.url) {
		t.Errorf("provision does not say it runs against the served sandbox:\n%s", r.out)
	}
	inv := w.inventory()
	if len(inv["servers"]) != 1 || len(inv["kube_servers"]) != 1 || len(inv["dns_records"]) != 1 || len(inv["secrets"]) != 3 {
		t.Fatalf("after provision the world holds %v", inv)
	}
	if tags, _ := inv["servers"][0]["tags"].(string); !strings.Contains(tags, "cluster=persist") {
		t.Errorf("server tags %q", tags)
	}

	// A second cluster for the same name is refused: the first one is
	// still there, in another process's world.
	w.must(2, "provision", "--cluster-name", "persist", "--output", "json")

	w.must(0, "destroy", "--cluster-name", "persist", "--yes", "--delete-secrets", "--output", "json")
	if inv := w.inventory(); len(inv["servers"])+len(inv["dns_records"])+len(inv["kube_servers"])+len(inv["secrets"])+len(inv["tokens"]) != 0 {
		t.Fatalf("destroy left %v", inv)
	}
}

func TestServedSandboxTakesFaultsWhileRunning(t *testing.T) {
	t.Parallel()
	w := serve(t)
	w.must(0, "sandbox", "fault", "talos.bootstrap=error")
	r := w.run("provision", "--cluster-name", "faulty", "--output", "json")
	if r.code == 0 {
		t.Fatalf("provision succeeded despite talos.bootstrap=error:\n%s", r.out)
	}
	if inv := w.inventory(); len(inv["servers"]) != 0 || len(inv["dns_records"]) != 0 {
		t.Fatalf("the undo left %v", inv)
	}
	w.must(0, "sandbox", "fault")
	w.must(0, "provision", "--cluster-name", "faulty", "--output", "json")
	w.must(0, "destroy", "--cluster-name", "faulty", "--yes", "--delete-secrets", "--output", "json")
}

func TestSandboxCommandsNeedAServedSandbox(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gone.yaml")
	if err := os.WriteFile(cfg, []byte("sandbox-url: http://127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, config: cfg, home: t.TempDir()}
	r := w.must(2, "sandbox", "inventory")
	if !strings.Contains(r.err, "sandbox serve") {
		t.Errorf("the error does not say how to start one:\n%s", r.err)
	}
	if err := os.WriteFile(cfg, []byte("sandbox-url: http://192.0.2.1:80\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = w.must(2, "destroy", "--cluster-name", "x", "--yes")
	if !strings.Contains(r.err, "sandbox-url") || !strings.Contains(r.err, "loopback") {
		t.Errorf("a non-loopback sandbox-url is not named:\n%s", r.err)
	}
}

// status runs `status --output json` and decodes the report.
func (w *world) status(code int, cluster string) map[string]any {
	w.t.Helper()
	r := w.must(code, "status", "--cluster-name", cluster, "--output", "json")
	var rep map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(r.out)), &rep); err != nil {
		w.t.Fatalf("status is not JSON: %v\n%s", err, r.out)
	}
	return rep
}

// check finds the state of the first check of component in a status report.
func check(rep map[string]any, component string) (state, detail string) {
	checks, _ := rep["checks"].([]any)
	for _, c := range checks {
		m := c.(map[string]any)
		if m["component"] == component {
			return m["state"].(string), m["detail"].(string)
		}
	}
	return "", ""
}

// deleteBehindTheBack deletes a server straight through the emulated
// Scaleway API, as someone in the web console would.
func (w *world) deleteBehindTheBack(id string) {
	w.t.Helper()
	var wd struct {
		ScalewayURL string `json:"scaleway_url"`
	}
	resp, err := http.Get(w.url + "/v1/world")
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&wd); err != nil {
		w.t.Fatal(err)
	}
	cfg, err := os.ReadFile(w.config)
	if err != nil {
		w.t.Fatal(err)
	}
	var settings map[string]any
	if err := yaml.Unmarshal(cfg, &settings); err != nil {
		w.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodDelete, wd.ScalewayURL+"/baremetal/v1/zones/fr-par-2/servers/"+id, nil)
	req.Header.Set("X-Auth-Token", settings["scaleway-secret-key"].(string))
	dr, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	dr.Body.Close()
	if dr.StatusCode != http.StatusOK {
		w.t.Fatalf("delete server %s: %s", id, dr.Status)
	}
}

func TestStatusSeesALockedDownClusterAndItsLoss(t *testing.T) {
	t.Parallel()
	w := serve(t)
	w.must(0, "provision", "--cluster-name", "seen", "--output", "json")

	rep := w.status(0, "seen")
	if rep["state"] != "ok" {
		t.Fatalf("state %v after provision: %v", rep["state"], rep)
	}
	for comp, want := range map[string]string{"server": "ok", "ports": "ok", "teleport": "ok", "dns": "ok", "secrets": "ok", "talos": "ok"} {
		if got, detail := check(rep, comp); got != want {
			t.Errorf("%s: %s (%s), want %s", comp, got, detail, want)
		}
	}
	if _, detail := check(rep, "talos"); !strings.Contains(detail, "route: inside") {
		t.Errorf("talos of a locked-down cluster was not read from inside: %s", detail)
	}
	// Locked down: the Talos API is closed from here and reached from
	// inside, through Teleport Kubernetes access.
	r := w.must(0, "etcd", "snapshot", "--cluster-name", "seen")
	if !strings.Contains(r.out, "from inside the cluster") {
		t.Errorf("snapshot of a locked-down cluster: %s\n%s", r.out, r.err)
	}
	list := w.must(0, "list")
	if !strings.Contains(list.out, "seen") || !strings.Contains(list.out, "registered") {
		t.Errorf("list:\n%s", list.out)
	}

	servers, _ := rep["servers"].([]any)
	if len(servers) != 1 {
		t.Fatalf("servers: %v", servers)
	}
	w.deleteBehindTheBack(servers[0].(map[string]any)["id"].(string))
	// Deletion takes a while in the emulated Scaleway, as in the real one:
	// the server is "deleting", then gone, and the agent with it; Teleport
	// keeps the agent's registration until its heartbeat expires.
	deadline := time.Now().Add(time.Minute)
	for {
		r := w.run("status", "--cluster-name", "seen", "--output", "json")
		var now map[string]any
		_ = json.Unmarshal([]byte(r.out), &now)
		if tp, _ := check(now, "teleport"); r.code == 1 && tp == "down" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never said down after the server was deleted (exit %d):\n%s\n%s", r.code, r.out, r.err)
		}
	}
	rep = w.status(1, "seen")
	if got, _ := check(rep, "secrets"); got != "ok" {
		t.Errorf("secrets %s: what the store holds does not go with the servers", got)
	}
	if got, _ := check(rep, "teleport"); got != "down" {
		t.Errorf("teleport %s with the server gone", got)
	}
	list = w.must(0, "list", "--output", "json")
	if !strings.Contains(list.out, `"name":"seen","servers":[]`) || !strings.Contains(list.out, `"secrets":true`) {
		t.Errorf("list does not show a cluster whose servers are gone but whose secrets are kept:\n%s", list.out)
	}
	w.must(0, "destroy", "--cluster-name", "seen", "--yes", "--delete-secrets", "--output", "json")
}

func TestStatusReadsTalosWhereALeftOpenRunLetsIt(t *testing.T) {
	t.Parallel()
	w := serve(t, "--sandbox-fault", "teleport.agent=never")
	w.must(3, "provision", "--cluster-name", "open", "--output", "json")
	rep := w.status(1, "open")
	if got, detail := check(rep, "talos"); got != "ok" || !strings.Contains(detail, "etcd members") {
		t.Errorf("talos: %s (%s), want ok with the etcd members", got, detail)
	}
	if got, _ := check(rep, "ports"); got != "degraded" {
		t.Errorf("ports %s: a run that stopped before lockdown leaves them open", got)
	}
	if got, _ := check(rep, "teleport"); got != "down" {
		t.Errorf("teleport %s: the agent never registered", got)
	}

	// Where the Talos API answers, etcd can be backed up through it.
	r := w.must(0, "etcd", "snapshot", "--cluster-name", "open", "--output", "json")
	if !strings.Contains(r.out, `"key":"etcd/open/`) {
		t.Errorf("snapshot: %s", r.out)
	}
	if inv := w.inventory(); len(inv["backups"]) != 1 {
		t.Errorf("backups after a snapshot: %v", inv["backups"])
	}
	// A running etcd is never overwritten.
	r = w.must(1, "etcd", "restore", "--cluster-name", "open")
	if !strings.Contains(r.err, "not waiting for bootstrap") {
		t.Errorf("restore onto a running etcd: %s", r.err)
	}
	w.must(0, "destroy", "--cluster-name", "open", "--yes", "--delete-secrets", "--output", "json")
}

// The disaster-recovery path through the real binary: a snapshot taken
// while the Talos API answered, the servers deleted behind the tool's back,
// status down, rebuild from the secret store and the snapshot, status
// healthy, destroy.
func TestRebuildAfterTheServersAreGone(t *testing.T) {
	t.Parallel()
	w := serve(t, "--sandbox-fault", "teleport.agent=never")
	w.must(3, "provision", "--cluster-name", "phoenix", "--output", "json")
	w.must(0, "etcd", "snapshot", "--cluster-name", "phoenix")
	w.must(0, "sandbox", "fault") // Teleport is fixed

	w.must(2, "rebuild", "--cluster-name", "phoenix", "--output", "json") // refused: the server is still there
	rep := w.status(1, "phoenix")
	servers, _ := rep["servers"].([]any)
	w.deleteBehindTheBack(servers[0].(map[string]any)["id"].(string))
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(w.run("status", "--cluster-name", "phoenix", "--output", "json").out, `"state":"down"`) {
		if time.Now().After(deadline) {
			t.Fatal("status never said down after the server was deleted")
		}
	}

	r := w.must(0, "rebuild", "--cluster-name", "phoenix", "--output", "json")
	if !strings.Contains(r.out, "etcd restored from snapshot") {
		t.Errorf("rebuild did not restore etcd from the snapshot:\n%s", r.out)
	}
	rep = w.status(0, "phoenix")
	if rep["state"] != "ok" {
		t.Fatalf("after rebuild: %v", rep)
	}
	w.must(0, "destroy", "--cluster-name", "phoenix", "--yes", "--delete-secrets", "--output", "json")
	inv := w.inventory()
	if len(inv["servers"])+len(inv["secrets"])+len(inv["kube_servers"])+len(inv["dns_records"])+len(inv["tokens"]) != 0 {
		t.Fatalf("left after destroy: %v", inv)
	}
	// Nothing to rebuild from once the secrets are gone.
	w.must(2, "rebuild", "--cluster-name", "phoenix", "--output", "json")
}

func TestResumeThroughTheBinary(t *testing.T) {
	t.Parallel()
	w := serve(t, "--sandbox-fault", "teleport.agent=never")
	w.must(3, "provision", "--cluster-name", "resumed", "--output", "json")
	w.must(0, "sandbox", "fault") // Teleport is fixed
	w.must(0, "provision", "--resume", "--cluster-name", "resumed", "--output", "json")
	if rep := w.status(0, "resumed"); rep["state"] != "ok" {
		t.Fatalf("status after resume: %v", rep)
	}
	w.must(0, "destroy", "--cluster-name", "resumed", "--yes", "--delete-secrets", "--output", "json")
}

// provision --resume does not know the proxmox topology: it refuses such a
// cluster, whether --topology says so or the host's tag does, before it
// changes anything, and says what to do instead.
func TestResumeRefusesTheProxmoxTopology(t *testing.T) {
	t.Parallel()
	w := serve(t, "--sandbox-fault", "scaleway.install=error")
	refused := func(r result) {
		t.Helper()
		for _, want := range []string{"cannot continue cluster pve: it is of the proxmox topology", "nothing was changed",
			"--cluster-name pve --yes --delete-secrets'", "--topology proxmox --cluster-name pve' again"} {
			if !strings.Contains(r.err, want) {
				t.Errorf("the refusal does not say %q:\n%s", want, r.err)
			}
		}
	}
	refused(w.must(2, "provision", "--resume", "--topology", "proxmox", "--cluster-name", "pve", "--output", "json"))

	// A run kept on failure leaves the Proxmox host, tagged as such.
	w.must(4, "provision", "--topology", "proxmox", "--domain", "pve.sandbox.example.com", "--cluster-name", "pve",
		"--keep-on-failure", "--output", "json")
	before := w.inventory()
	if len(before["servers"]) != 1 {
		t.Fatalf("servers kept: %v", before["servers"])
	}
	refused(w.must(2, "provision", "--resume", "--cluster-name", "pve", "--output", "json"))
	after := w.inventory()
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the refused resume changed the world:\nbefore %v\nafter  %v", before, after)
	}
	w.must(0, "destroy", "--cluster-name", "pve", "--yes", "--delete-secrets", "--output", "json")
	if inv := w.inventory(); len(inv["servers"])+len(inv["dns_records"])+len(inv["secrets"]) != 0 {
		t.Errorf("left after destroy: %v", inv)
	}
}

// The served world runs the proxmox topology too: the CLI in another
// process reaches the emulated host's API and the Teleport VM by asking the
// serving process where they answer, as the in-process sandbox tells its
// own client; then destroy removes what the run made.
func TestProxmoxThroughTheServedSandbox(t *testing.T) {
	t.Parallel()
	w := serve(t)
	r := w.must(0, "provision", "--topology", "proxmox", "--domain", "pvs.sandbox.example.com", "--cluster-name", "pvs", "--output", "json")
	if !strings.Contains(r.out, "locked down") {
		t.Errorf("no lockdown in the output:\n%s", r.out)
	}
	inv := w.inventory()
	if len(inv["servers"]) != 1 || len(inv["dns_records"]) != 3 {
		t.Fatalf("after provision: servers %v, DNS records %v; want the host and its three records", inv["servers"], inv["dns_records"])
	}
	w.must(0, "destroy", "--cluster-name", "pvs", "--yes", "--delete-secrets", "--output", "json")
	if inv := w.inventory(); len(inv["servers"])+len(inv["dns_records"])+len(inv["secrets"])+len(inv["tokens"]) != 0 {
		t.Errorf("left after destroy: %v", inv)
	}
}
