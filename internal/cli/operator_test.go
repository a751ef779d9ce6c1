package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/cli"
)

// Exit 4 ends, on stderr and whatever became of stdout, with everything
// that remains and the command that removes it; in the sandbox those
// commands carry --sandbox.
func TestIncompleteCleanupListsLeftoversOnStderr(t *testing.T) {
	t.Parallel()
	for _, output := range []string{"plain", "json"} {
		r := run(t, invocation{args: []string{"provision", "--sandbox", "--sandbox-speed", fast, "--output", output,
			"--sandbox-fault", "talos.bootstrap=error", "--sandbox-fault", "scaleway.delete-server=error"}})
		if r.code != 4 {
			t.Fatalf("%s: exit %d, want 4\n%s", output, r.code, r.err)
		}
		tail := r.err[strings.Index(r.err, "Left behind"):]
		if !strings.Contains(r.err, "Left behind: cleanup could not remove (1)") ||
			!strings.Contains(tail, "- Scaleway server ") ||
			!strings.Contains(tail, "remove with: rawkode-cloud destroy --sandbox --server-id ") {
			t.Errorf("%s: stderr does not end with the leftovers:\n%s", output, r.err)
		}
		if strings.Contains(r.err, "--help") {
			t.Errorf("%s: a service failure reads as a usage error:\n%s", output, r.err)
		}
	}
}

// Exit 3 in the sandbox: every suggested command is a sandbox command, and
// other tools' commands (which would reach real services) are not offered.
func TestSandboxHintsStayInTheSandbox(t *testing.T) {
	t.Parallel()
	r := run(t, invocation{args: []string{"provision", "--sandbox", "--sandbox-speed", fast, "--output", "json",
		"--sandbox-fault", "teleport.agent=never"}})
	if r.code != 3 {
		t.Fatalf("exit %d, want 3\n%s", r.code, r.err)
	}
	if !strings.Contains(r.err, "rawkode-cloud destroy --sandbox --cluster-name sandbox") {
		t.Errorf("hint lacks the sandbox destroy:\n%s", r.err)
	}
	for _, stream := range []string{r.out, r.err} {
		for _, line := range strings.Split(stream, "\n") {
			if i := strings.Index(line, "rawkode-cloud destroy"); i >= 0 && !strings.HasPrefix(line[i:], "rawkode-cloud destroy --sandbox") {
				t.Errorf("suggests a real-cloud command: %s", line)
			}
			if strings.Contains(line, "api.cloudflare.com") || strings.Contains(line, "tctl tokens rm") {
				t.Errorf("suggests another tool against real services: %s", line)
			}
		}
	}
	if !strings.Contains(r.err, "Left in place for debugging (") {
		t.Errorf("no list of what was left:\n%s", r.err)
	}
}

func TestSandboxSpeedZero(t *testing.T) {
	t.Parallel()
	r := run(t, invocation{args: []string{"provision", "--sandbox", "--sandbox-speed", "0"}})
	r.assertUsageError(t, "greater than 0", "got 0")
	if strings.Contains(r.err, "between 0 and") {
		t.Errorf("says 0 is allowed:\n%s", r.err)
	}
}

// The JSON summary's timings are numbers.
func TestSummaryTimingsAreNumbers(t *testing.T) {
	t.Parallel()
	r := run(t, invocation{args: []string{"provision", "--sandbox", "--sandbox-speed", fast, "--output", "json"}})
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.err)
	}
	var summary map[string]any
	for _, line := range strings.Split(r.out, "\n") {
		if strings.Contains(line, `"type":"summary"`) {
			if err := json.Unmarshal([]byte(line), &summary); err != nil {
				t.Fatal(err)
			}
		}
		if strings.Contains(line, ":null") {
			t.Errorf("null where a list or value belongs: %s", line)
		}
	}
	if _, ok := summary["total_seconds"].(float64); !ok {
		t.Errorf("total_seconds = %#v", summary["total_seconds"])
	}
	phases, _ := summary["phases"].([]any)
	if len(phases) != 7 {
		t.Fatalf("phases = %#v", summary["phases"])
	}
	for _, p := range phases {
		if _, ok := p.(map[string]any)["seconds"].(float64); !ok {
			t.Errorf("phase timing %v has no number of seconds", p)
		}
	}
	if ahead := phases[3].(map[string]any)["ahead_in"]; ahead != "Wait for install and Talos" {
		t.Errorf("Update DNS ahead_in = %v", ahead)
	}
}

// TERM=dumb gets no escape codes even on a terminal.
func TestDumbTerminalGetsPlainLines(t *testing.T) {
	t.Parallel()
	r := run(t, invocation{terminal: true, env: map[string]string{"TERM": "dumb"},
		args: []string{"provision", "--sandbox", "--sandbox-speed", fast, "--cluster-name", "dumb"}})
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.err)
	}
	if strings.ContainsAny(r.out, "\x1b\r") {
		t.Errorf("escape codes for TERM=dumb:\n%q", r.out[:min(400, len(r.out))])
	}
}

// The report's figures are printed as numbers, and a failed run's report
// has no meaningless (negative) overhead.
func TestReportFiguresOfAFailedRun(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "report.json")
	r := run(t, invocation{args: []string{"provision", "--sandbox", "--sandbox-speed", fast, "--output", "plain",
		"--sandbox-fault", "talos.bootstrap=error", "--report", path}})
	if r.code != 1 {
		t.Fatalf("exit %d\n%s", r.code, r.err)
	}
	if strings.Contains(r.out, "0x") || strings.Contains(r.out, "<nil>") {
		t.Errorf("a pointer or nil printed:\n%s", r.out)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep["outcome"] != "failed" || rep["cli_added_seconds"] != nil || rep["cli_added_seconds_real"] != nil {
		t.Errorf("failed run: outcome %v, cli_added_seconds %v, cli_added_seconds_real %v", rep["outcome"], rep["cli_added_seconds"], rep["cli_added_seconds_real"])
	}
	r = run(t, invocation{args: []string{"provision", "--sandbox", "--sandbox-speed", fast, "--output", "plain", "--report", path}})
	if r.code != 0 || !strings.Contains(r.out, "performance report written cli_added_seconds_real=") || strings.Contains(r.out, "0x") {
		t.Errorf("exit %d:\n%s", r.code, r.out)
	}
}

// One signal cancels; only later ones are reported as "again", however the
// scheduler orders things.
func TestOneInterruptIsNeverTwo(t *testing.T) {
	t.Parallel()
	for range 200 {
		signals := make(chan os.Signal)
		ctx, later, stop := cli.NotifyInterrupts(context.Background(), signals)
		signals <- syscall.SIGINT
		<-ctx.Done()
		select {
		case <-later:
			t.Fatal("the first interrupt was also delivered as a later one")
		default:
		}
		signals <- syscall.SIGINT
		select {
		case <-later:
		case <-time.After(10 * time.Second):
			t.Fatal("the second interrupt was not delivered")
		}
		stop()
		if len(later) != 0 {
			t.Fatal("more later interrupts than were sent")
		}
	}
}
