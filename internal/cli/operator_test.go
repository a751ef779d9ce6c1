package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/cli"
	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/sandbox"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
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

// A mistyped flag gets a suggestion, like a mistyped config key; a setting
// the command does not use says which commands do.
func TestFlagTyposGetSuggestions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args  []string
		wants []string
	}{
		{[]string{"provision", "--clustername", "x"}, []string{"unknown flag: --clustername", "did you mean --cluster-name?", "rawkode-cloud provision --help"}},
		{[]string{"destroy", "--server-di", "x"}, []string{"did you mean --server-id?"}},
		{[]string{"plan", "--kubernetes-verison", "1.35.1"}, []string{"did you mean --kubernetes-version?"}},
		{[]string{"destroy", "--keep-on-failure"}, []string{"destroy has no such option", "keep-on-failure is used by provision"}},
	}
	for _, tt := range tests {
		r := run(t, invocation{args: tt.args})
		r.assertUsageError(t, tt.wants...)
	}
}

// An unknown RAWKODE_CLOUD_* variable is not silently ignored.
func TestUnknownEnvironmentVariableWarns(t *testing.T) {
	t.Parallel()
	r := run(t, invocation{env: map[string]string{"RAWKODE_CLOUD_CLUSTERNAME": "x", "RAWKODE_CLOUD_TEST_MATRIX": "1"},
		args: []string{"plan", "--cluster-name", "demo"}})
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.err)
	}
	want := "Warning: environment variable RAWKODE_CLOUD_CLUSTERNAME is not a rawkode-cloud setting and is ignored (did you mean RAWKODE_CLOUD_CLUSTER_NAME?)\n"
	if r.err != want {
		t.Errorf("stderr = %q, want %q", r.err, want)
	}
}

// helpFlags lists the flags a command's --help offers.
func helpFlags(t *testing.T, args ...string) map[string]bool {
	t.Helper()
	r := run(t, invocation{args: append(args, "--help")})
	if r.code != 0 {
		t.Fatalf("%v --help: exit %d", args, r.code)
	}
	flags := map[string]bool{}
	for _, line := range strings.Split(r.out, "\n") {
		f := strings.Fields(line)
		for _, w := range f {
			if strings.HasPrefix(w, "--") {
				flags[strings.TrimPrefix(w, "--")] = true
				break
			}
		}
	}
	return flags
}

// Each command offers only the settings it uses.
func TestCommandsOfferOnlyTheirSettings(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cmd       []string
		has, lack []string
	}{
		{[]string{"destroy"}, []string{"cluster-name", "scaleway-zone", "server-timeout", "output"}, []string{"keep-on-failure", "undo-timeout", "scaleway-offer-id", "talos-version", "acme-email"}},
		{[]string{"plan"}, []string{"cluster-name", "talos-version", "secrets-out"}, []string{"undo-timeout", "keep-on-failure", "acme-email"}},
		{[]string{"provision"}, []string{"keep-on-failure", "undo-timeout", "talos-version"}, []string{"acme-email"}},
		{[]string{"config", "show"}, []string{"keep-on-failure", "acme-email", "undo-timeout"}, nil},
	} {
		flags := helpFlags(t, tt.cmd...)
		for _, f := range tt.has {
			if !flags[f] {
				t.Errorf("%v lacks --%s", tt.cmd, f)
			}
		}
		for _, f := range tt.lack {
			if flags[f] {
				t.Errorf("%v offers --%s, which it does not use", tt.cmd, f)
			}
		}
	}
	r := run(t, invocation{args: []string{"config", "show", "--help"}})
	for _, line := range strings.Split(r.out, "\n") {
		if strings.Contains(line, "--output") && strings.Contains(line, "Progress") {
			t.Errorf("config show calls --output progress: %s", line)
		}
	}
}

// complete asks the CLI what the shell should offer.
func complete(t *testing.T, args ...string) []string {
	t.Helper()
	r := run(t, invocation{args: append([]string{"__complete"}, args...)})
	if r.code != 0 {
		t.Fatalf("__complete %v: exit %d\n%s", args, r.code, r.err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(r.out), "\n") {
		if strings.HasPrefix(line, ":") {
			continue
		}
		v, _, _ := strings.Cut(line, "\t")
		out = append(out, v)
	}
	return out
}

// Shell completion completes values, not only flag names.
func TestCompletionOffersValues(t *testing.T) {
	t.Parallel()
	has := func(got []string, want ...string) bool {
		for _, w := range want {
			found := false
			for _, g := range got {
				found = found || g == w
			}
			if !found {
				return false
			}
		}
		return true
	}
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"provision", "--output", ""}, []string{"auto", "plain", "json"}},
		{[]string{"config", "show", "--output", ""}, []string{"auto", "plain", "json"}},
		{[]string{"destroy", "--scaleway-zone", ""}, []string{"fr-par-1", "fr-par-2", "nl-ams-1", "pl-waw-3"}},
		{[]string{"provision", "--keep-on-failure="}, []string{"true", "false"}},
		{[]string{"provision", "--sandbox-fault", ""}, []string{"list", "talos.bootstrap=", "scaleway.delete-server="}},
		{[]string{"provision", "--sandbox-fault", "talos.bootstrap="}, []string{"talos.bootstrap=error", "talos.bootstrap=hang", "talos.bootstrap=never"}},
		{[]string{"config", "show", "--platform-secret-store", ""}, []string{"onepassword", "infisical"}},
	} {
		if got := complete(t, tt.args...); !has(got, tt.want...) {
			t.Errorf("%v: completion %v lacks some of %v", tt.args, got, tt.want)
		}
	}
}

// seedServer orders a server of cluster in the sandbox as soon as it starts.
func seedServer(t *testing.T, cluster string, id *string) func(*sandbox.Sandbox) {
	return func(sb *sandbox.Sandbox) {
		cfg := config.New()
		cfg.Set(config.ClusterName, cluster, config.FromFlag, "")
		sb.Apply(cfg)
		c, err := sb.Factory().Scaleway(cfg)
		if err != nil {
			t.Error(err)
			return
		}
		srv, err := c.CreateServer(context.Background(), scaleway.ServerSpec{Name: cluster, Hostname: cluster,
			OfferID: cfg.Get(config.ScalewayOfferID), OSID: cfg.Get(config.ScalewayOSID), SSHKeyIDs: sshKeys(t, c),
			Tags: scaleway.ClusterTags(cluster)})
		if err != nil {
			t.Error(err)
			return
		}
		*id = srv.ID
	}
}

func sshKeys(t *testing.T, c interface {
	ListSSHKeyIDs(context.Context) ([]string, error)
}) []string {
	keys, err := c.ListSSHKeyIDs(context.Background())
	if err != nil {
		t.Error(err)
	}
	return keys
}

// destroy checks the settings and finds what it would remove before it
// asks; then it shows that list, and only "yes" removes it.
func TestDestroyAsksAfterChecking(t *testing.T) {
	t.Parallel()
	// Missing credentials: told at once, never asked.
	r := run(t, invocation{terminal: true, stdin: "yes\n", args: []string{"destroy", "--cluster-name", "demo"}})
	r.assertUsageError(t, "scaleway-access-key", "scaleway-secret-key", "scaleway-project-id")
	if strings.Contains(r.out, "Type 'yes'") {
		t.Errorf("asked before checking the settings:\n%s", r.out)
	}

	for _, answer := range []string{"no\n", "yes\n"} {
		var id string
		r := run(t, invocation{terminal: true, stdin: answer, onSandbox: seedServer(t, "asked", &id),
			args: []string{"destroy", "--sandbox", "--sandbox-speed", fast, "--cluster-name", "asked", "--output", "plain"}})
		list := strings.Index(r.out, "This removes (cluster asked):\n  - Scaleway server "+id)
		prompt := strings.Index(r.out, "Type 'yes' to destroy them: ")
		if id == "" || list < 0 || prompt < list {
			t.Fatalf("answer %q: no list of what would be removed before the prompt:\n%s", answer, r.out)
		}
		if answer == "no\n" {
			r.assertUsageError(t, "nothing was touched")
			continue
		}
		if r.code != 0 || !strings.Contains(r.out[prompt:], "removed (1)") {
			t.Errorf("exit %d after yes:\n%s\n%s", r.code, r.out, r.err)
		}
	}
}

// A malformed server ID is a usage error like any other.
func TestDestroyMalformedServerID(t *testing.T) {
	t.Parallel()
	r := run(t, invocation{args: []string{"destroy", "--sandbox", "--server-id", "bogus", "--yes"}})
	r.assertUsageError(t, `--server-id "bogus" is not a Scaleway server ID`)
	// Well formed but nowhere: already gone, saying where it was looked for.
	r = run(t, invocation{args: []string{"destroy", "--sandbox", "--server-id", "11111111-2222-3333-4444-555555555555", "--yes", "--output", "plain"}})
	if r.code != 0 || !strings.Contains(r.out, "already gone (searched the Elastic Metal zones fr-par-2, fr-par-1, nl-ams-1, nl-ams-2, pl-waw-2, pl-waw-3)") {
		t.Errorf("exit %d:\n%s\n%s", r.code, r.out, r.err)
	}
}

// destroy --help describes destroy's exit codes, not provision's.
func TestDestroyHelpHasItsOwnExitCodes(t *testing.T) {
	t.Parallel()
	r := run(t, invocation{args: []string{"destroy", "--help"}})
	if !strings.Contains(r.out, "server is in another zone") || strings.Contains(r.out, "verification failed") {
		t.Errorf("destroy --help:\n%s", r.out)
	}
}

// A bad value for a setting the sandbox replaces is ignored like a good one.
func TestSandboxIgnoresBadReplacedValues(t *testing.T) {
	t.Parallel()
	r := run(t, invocation{homeFile: "scaleway-secret-key: x\n",
		args: []string{"provision", "--sandbox", "--sandbox-speed", fast, "--output", "plain", "--cluster-name", "replaced"}})
	if r.code != 0 || !strings.Contains(r.out, "ignored: scaleway-secret-key (file)") {
		t.Errorf("exit %d\n%s\n%s", r.code, r.out, r.err)
	}
}

// Everything provision needs is said in one round, and plan says it too.
func TestRequiredSettingsInOneRound(t *testing.T) {
	t.Parallel()
	r := run(t, invocation{args: []string{"provision", "--output", "plain"}})
	if r.code != 2 || !strings.Contains(r.err, "cluster-name: required") || !strings.Contains(r.err, "secrets-out:") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.err)
	}
	r = run(t, invocation{args: []string{"plan", "--cluster-name", "demo"}})
	if r.code != 0 || !strings.Contains(r.out, "A real provision would still need (7):") || !strings.Contains(r.out, "secrets-out:") {
		t.Errorf("plan:\n%s", r.out)
	}
}

// config show with an Infisical that fails shows the local layers anyway,
// marking what Infisical could have filled.
func TestConfigShowWithInfisicalDown(t *testing.T) {
	t.Parallel()
	store := &lister{err: errors.New("dial tcp 192.0.2.1:443: connect: connection refused")}
	r := run(t, invocation{env: infisicalEnv, secrets: store, args: []string{"config", "show", "--cluster-name", "local"}})
	if r.code == 0 {
		t.Fatal("exit 0 although Infisical failed")
	}
	rows := table(t, strings.Split(r.out, "\n\n")[0]+"\n")
	if rows[config.ClusterName] != [2]string{"local", "flag"} {
		t.Errorf("cluster-name row = %v", rows[config.ClusterName])
	}
	if got := rows[config.ScalewayOfferID][1]; got != "unset; Infisical unreachable" {
		t.Errorf("scaleway-offer-id source = %q", got)
	}
	if !strings.Contains(r.out, "Infisical unreachable, so the settings it could fill are shown without it: ") || !strings.Contains(r.out, "connection refused") {
		t.Errorf("no reason shown:\n%s", r.out)
	}
}

// provision's phase-0 checks are bounded like config show's: a service that
// accepts connections and never answers costs seconds, and the message
// names it.
func TestProvisionPhase0SilentServiceIsBounded(t *testing.T) {
	t.Parallel()
	start := time.Now()
	r := run(t, invocation{env: infisicalEnv, secrets: &lister{silent: true}, args: []string{"provision", "--cluster-name", "silent"}})
	if took := time.Since(start); took > 40*time.Second {
		t.Errorf("took %s: phase 0 must give up on a silent service within seconds", took.Round(time.Second))
	}
	if r.code != 2 {
		t.Fatalf("exit %d, want 2\n%s\n%s", r.code, r.out, r.err)
	}
	for _, want := range []string{"Infisical https://infisical.example.com did not answer within 15s", "service unavailable", "Nothing was created"} {
		if !strings.Contains(r.err, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.err)
		}
	}
}
