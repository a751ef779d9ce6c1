package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The real binary, built once for every test here: SIGINT must reach the
// process exactly as a user's Ctrl-C does, not a cancelled context.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rawkode-cloud-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "rawkode-cloud")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// run is one provisioning by the real binary, with its JSON events.
type run struct {
	cmd    *exec.Cmd
	events chan map[string]any
	all    []map[string]any
	mu     sync.Mutex
	stderr strings.Builder
	done   chan struct{}
}

func start(t *testing.T, args ...string) *run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, binary(t), append([]string{"provision", "--sandbox", "--output", "json"}, args...)...)
	// A clean environment: nothing of the developer's settings leaks in.
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r := &run{cmd: cmd, events: make(chan map[string]any, 1024), done: make(chan struct{})}
	cmd.Stderr = &syncWriter{mu: &r.mu, b: &r.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(r.events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev map[string]any
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = map[string]any{"type": "not-json", "line": sc.Text()}
			}
			r.mu.Lock()
			r.all = append(r.all, ev)
			r.mu.Unlock()
			r.events <- ev
		}
	}()
	return r
}

type syncWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// until reads events until match says yes; false when the output ended.
func (r *run) until(match func(map[string]any) bool) bool {
	for ev := range r.events {
		if match(ev) {
			return true
		}
	}
	return false
}

func (r *run) interrupt(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("send SIGINT: %v", err)
	}
}

// wait drains the output and returns the exit code.
func (r *run) wait(t *testing.T) int {
	t.Helper()
	for range r.events {
	}
	err := r.cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("wait: %v", err)
	return -1
}

func (r *run) dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, ev := range r.all {
		if ev["type"] == "state" {
			continue
		}
		line, _ := json.Marshal(ev)
		fmt.Fprintf(&b, "  %s\n", line)
	}
	fmt.Fprintf(&b, "stderr:\n%s", r.stderr.String())
	return b.String()
}

// inventory is the final event, which must be the sandbox's inventory.
func (r *run) inventory(t *testing.T) map[string]any {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.all) == 0 {
		t.Fatal("no output")
	}
	last := r.all[len(r.all)-1]
	if last["type"] != "inventory" {
		t.Fatalf("last event is %v, want the inventory", last["type"])
	}
	return last
}

func empty(inv map[string]any) bool {
	for _, k := range []string{"servers", "dns_records", "tokens", "kube_servers", "secrets"} {
		if list, _ := inv[k].([]any); len(list) > 0 {
			return false
		}
	}
	return true
}

func (r *run) sawEvent(match func(map[string]any) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.all {
		if match(ev) {
			return true
		}
	}
	return false
}

var phases = []string{"Resolve secrets", "Order server", "Wait for install and Talos", "Update DNS", "Generate config", "Bootstrap cluster", "Verify and lock down"}

// fast is the sandbox clock for these runs: quick, yet every phase lasts
// long enough to be interrupted once it has started.
const fast = "400"

// TestSIGINTInEachPhase: Ctrl-C once a phase has started → cleanup removes
// everything created so far, exit 130, and the inventory is empty.
func TestSIGINTInEachPhase(t *testing.T) {
	t.Parallel()
	binary(t)
	for _, phase := range phases {
		t.Run(phase, func(t *testing.T) {
			t.Parallel()
			r := start(t, "--sandbox-speed", fast)
			if !r.until(func(ev map[string]any) bool { return ev["type"] == "phase-start" && ev["phase"] == phase }) {
				t.Fatalf("phase %q never started:\n%s", phase, r.dump())
			}
			r.interrupt(t)
			code := r.wait(t)
			if code != 130 {
				t.Fatalf("exit %d, want 130:\n%s", code, r.dump())
			}
			if inv := r.inventory(t); !empty(inv) {
				t.Fatalf("left behind after SIGINT in %q: %v\n%s", phase, inv, r.dump())
			}
			if !strings.Contains(r.stderr.String(), "Error: interrupted") || strings.Contains(r.stderr.String(), "context canceled") {
				t.Errorf("the error does not say the run was interrupted:\n%s", r.stderr.String())
			}
			// One Ctrl-C is one: never also taken for a second.
			if r.sawEvent(func(ev map[string]any) bool {
				return strings.Contains(fmt.Sprint(ev["message"]), "interrupt received again")
			}) {
				t.Errorf("a single interrupt was reported twice:\n%s", r.dump())
			}
		})
	}
}

// TestSecondSIGINTDuringCleanup: Ctrl-C again while cleanup runs does not
// abandon it: a warning says cleanup goes on, everything is removed, and the
// exit code is still 130.
func TestSecondSIGINTDuringCleanup(t *testing.T) {
	t.Parallel()
	// A rate-limited delete keeps cleanup busy for about a second (the
	// Retry-After), long enough for the second Ctrl-C to land in it.
	r := start(t, "--sandbox-speed", fast, "--sandbox-fault", "scaleway.delete-server=ratelimit@1")
	if !r.until(func(ev map[string]any) bool { return ev["type"] == "phase-start" && ev["phase"] == "Bootstrap cluster" }) {
		t.Fatalf("bootstrap never started:\n%s", r.dump())
	}
	r.interrupt(t)
	if !r.until(func(ev map[string]any) bool { return ev["type"] == "undo-start" }) {
		t.Fatalf("cleanup never started:\n%s", r.dump())
	}
	r.interrupt(t)
	code := r.wait(t)
	if code != 130 {
		t.Fatalf("exit %d, want 130:\n%s", code, r.dump())
	}
	if !r.sawEvent(func(ev map[string]any) bool {
		return ev["type"] == "warn" && strings.Contains(fmt.Sprint(ev["message"]), "interrupt received again")
	}) {
		t.Errorf("no warning that cleanup goes on after the second interrupt:\n%s", r.dump())
	}
	if !r.sawEvent(func(ev map[string]any) bool { return ev["type"] == "undo-done" && ev["remaining"] == float64(0) }) {
		t.Errorf("cleanup did not complete:\n%s", r.dump())
	}
	if inv := r.inventory(t); !empty(inv) {
		t.Fatalf("left behind: %v\n%s", inv, r.dump())
	}
}
