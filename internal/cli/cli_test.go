package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/cli"
	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/sandbox"
)

// Distinctive secret values: valid for their settings, so they are accepted
// and must then be hidden everywhere.
const (
	secretKey       = "deadbeef-0bad-cafe-f00d-5ec7e75ec7e7"
	accessKey       = "SCWLEAKY0ACCESS0KEY7"
	clientSecret    = "leaky-infisical-client-secret-31337"
	cfTokenFromInf  = "leaky-cloudflare-token-from-infisical-4711"
	otherStoreValue = "leaky-unrelated-store-value-0815"
)

var allSecrets = []string{secretKey, accessKey, clientSecret, cfTokenFromInf, otherStoreValue}

// lister is a fake Infisical: it records calls and returns fixed values.
type lister struct {
	mu     sync.Mutex
	calls  int
	seen   string // infisical-url of the config it was called with
	values map[string]string
	err    error
	// silent makes it an Infisical that accepts the request and never
	// answers: List returns only when its context ends.
	silent bool
}

func (l *lister) list(ctx context.Context, cfg *config.Config) (map[string]string, error) {
	if l.silent {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	l.seen = cfg.Get(config.InfisicalURL)
	return l.values, l.err
}

func (l *lister) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls
}

type invocation struct {
	homeFile  string            // body of ~/.rawkode-cloud.yaml, "" for none
	env       map[string]string // the whole environment
	secrets   *lister           // nil: a lister that fails the test if called
	args      []string
	terminal  bool   // stdout is an interactive terminal
	stdin     string // what the user types
	onSandbox func(*sandbox.Sandbox)
}

type result struct {
	code     int
	out, err string
	home     string
}

func run(t *testing.T, inv invocation) result {
	t.Helper()
	home := t.TempDir()
	if inv.homeFile != "" {
		if err := os.WriteFile(filepath.Join(home, ".rawkode-cloud.yaml"), []byte(inv.homeFile), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var out, errOut bytes.Buffer
	env := cli.Env{
		In:  strings.NewReader(inv.stdin),
		Out: &out, Err: &errOut,
		LookupEnv: func(k string) (string, bool) { v, ok := inv.env[k]; return v, ok },
		Environ: func() []string {
			var kv []string
			for k, v := range inv.env {
				kv = append(kv, k+"="+v)
			}
			return kv
		},
		Home:      home,
		Terminal:  inv.terminal,
		OnSandbox: inv.onSandbox,
	}
	if inv.secrets != nil {
		env.Secrets = inv.secrets.list
	} else {
		env.Secrets = func(context.Context, *config.Config) (map[string]string, error) {
			t.Errorf("Infisical was contacted for %v", inv.args)
			return nil, errors.New("unexpected")
		}
	}
	code := cli.Execute(context.Background(), inv.args, env)
	return result{code: code, out: out.String(), err: errOut.String(), home: home}
}

func (r result) assertNoSecrets(t *testing.T) {
	t.Helper()
	for _, s := range allSecrets {
		if strings.Contains(r.out, s) || strings.Contains(r.err, s) {
			t.Errorf("secret %q printed:\nstdout:\n%s\nstderr:\n%s", s, r.out, r.err)
		}
	}
}

var stackTrace = regexp.MustCompile(`goroutine \d|panic:|\.go:\d+`)

// assertUsageError checks exit 2 and one clean, redacted error message.
func (r result) assertUsageError(t *testing.T, wants ...string) {
	t.Helper()
	if r.code != 2 {
		t.Errorf("exit code = %d, want 2\nstderr:\n%s", r.code, r.err)
	}
	if !strings.HasPrefix(r.err, "Error: ") || strings.Count(r.err, "Error: ") != 1 {
		t.Errorf("stderr is not one error message:\n%s", r.err)
	}
	if stackTrace.MatchString(r.err) {
		t.Errorf("stderr has a stack trace:\n%s", r.err)
	}
	for _, w := range wants {
		if !strings.Contains(r.err, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.err)
		}
	}
	r.assertNoSecrets(t)
}

// table parses `config show` text output: setting → [value, source].
func table(t *testing.T, out string) map[string][2]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) == 0 || !regexp.MustCompile(`^SETTING\s+VALUE\s+SOURCE$`).MatchString(lines[0]) {
		t.Fatalf("no header in:\n%s", out)
	}
	row := regexp.MustCompile(`^(\S+)\s+(\S+)\s+(\S.*)$`)
	rows := map[string][2]string{}
	for _, l := range lines[1:] {
		m := row.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("malformed row %q", l)
		}
		rows[m[1]] = [2]string{m[2], strings.TrimRight(m[3], " ")}
	}
	return rows
}

var layered = invocation{
	homeFile: "cluster-name: from-file\nscaleway-zone: fr-par-1\n",
	env: map[string]string{
		"RAWKODE_CLOUD_SCALEWAY_ZONE":       "nl-ams-1",
		"RAWKODE_CLOUD_SCALEWAY_SECRET_KEY": secretKey,
	},
	args: []string{"config", "show", "--talos-version", "v1.12.3", "--scaleway-access-key", accessKey},
}

func TestConfigShowText(t *testing.T) {
	t.Parallel()
	r := run(t, layered)
	if r.code != 0 || r.err != "" {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.err)
	}
	rows := table(t, r.out)
	file := filepath.Join(r.home, ".rawkode-cloud.yaml")
	want := map[string][2]string{
		config.ClusterName:        {"from-file", "file (" + file + ":1)"},
		config.ScalewayZone:       {"nl-ams-1", "env (RAWKODE_CLOUD_SCALEWAY_ZONE)"},
		config.TalosVersion:       {"v1.12.3", "flag"},
		config.KubernetesVersion:  {"1.35.1", "default"},
		config.ScalewaySecretKey:  {"(set)", "env (RAWKODE_CLOUD_SCALEWAY_SECRET_KEY)"},
		config.ScalewayAccessKey:  {"(set)", "flag"},
		config.ScalewayOSID:       {"-", "unset"},
		config.CloudflareAPIToken: {"-", "unset"},
	}
	for name, w := range want {
		if got := rows[name]; got != w {
			t.Errorf("%s = %q, want %q", name, got, w)
		}
	}
	if len(rows) != len(config.Schema) {
		t.Errorf("%d rows for %d settings", len(rows), len(config.Schema))
	}
	r.assertNoSecrets(t)
}

type shown struct {
	Value  any    `json:"value"`
	Source string `json:"source"`
	Origin string `json:"origin"`
}

func TestConfigShowJSON(t *testing.T) {
	t.Parallel()
	inv := layered
	inv.args = append(append([]string(nil), layered.args...), "--output", "json")
	r := run(t, inv)
	if r.code != 0 || r.err != "" {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.err)
	}
	var got map[string]shown
	if err := json.Unmarshal([]byte(r.out), &got); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, r.out)
	}
	if len(got) != len(config.Schema) {
		t.Errorf("%d entries for %d settings", len(got), len(config.Schema))
	}
	file := filepath.Join(r.home, ".rawkode-cloud.yaml")
	want := map[string]shown{
		config.ClusterName:       {"from-file", "file", file + ":1"},
		config.ScalewayZone:      {"nl-ams-1", "env", "RAWKODE_CLOUD_SCALEWAY_ZONE"},
		config.TalosVersion:      {"v1.12.3", "flag", "--talos-version"},
		config.Output:            {"json", "flag", "--output"},
		config.KubernetesVersion: {"1.35.1", "default", ""},
		config.ScalewaySecretKey: {"(set)", "env", "RAWKODE_CLOUD_SCALEWAY_SECRET_KEY"},
		config.ScalewayAccessKey: {"(set)", "flag", "--scaleway-access-key"},
		config.ScalewayOSID:      {nil, "unset", ""},
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %+v, want %+v", name, got[name], w)
		}
	}
	r.assertNoSecrets(t)
}

var infisicalEnv = map[string]string{
	"RAWKODE_CLOUD_INFISICAL_URL":           "https://infisical.example.com",
	"RAWKODE_CLOUD_INFISICAL_CLIENT_ID":     "client-id-1",
	"RAWKODE_CLOUD_INFISICAL_CLIENT_SECRET": clientSecret,
	"RAWKODE_CLOUD_INFISICAL_PROJECT_ID":    "project-1",
}

func TestConfigShowFillsFromInfisical(t *testing.T) {
	t.Parallel()
	store := &lister{values: map[string]string{
		"CLUSTER_NAME":         "from-infisical",                       // the flag wins
		"SCALEWAY_ZONE":        "nl-ams-1",                             // only a default: filled
		"SCALEWAY_PROJECT_ID":  "11111111-2222-3333-4444-555555555555", // unset: filled
		"CLOUDFLARE_API_TOKEN": cfTokenFromInf,
		"CLOUDFLARE_ZONE_ID":   "0123456789abcdef0123456789abcdef",
		"CLOUDFLARE_DNS_NAME":  "k8s.example.com",
		"UNRELATED":            otherStoreValue,
	}}
	r := run(t, invocation{env: infisicalEnv, secrets: store,
		args: []string{"config", "show", "--output", "json", "--cluster-name", "from-flag"}})
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.err)
	}
	if store.count() != 1 || store.seen != "https://infisical.example.com" {
		t.Errorf("Infisical called %d times with url %q", store.count(), store.seen)
	}
	var got map[string]shown
	if err := json.Unmarshal([]byte(r.out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.out)
	}
	want := map[string]shown{
		config.ClusterName:           {"from-flag", "flag", "--cluster-name"},
		config.ScalewayZone:          {"nl-ams-1", "infisical", "SCALEWAY_ZONE"},
		config.ScalewayProjectID:     {"11111111-2222-3333-4444-555555555555", "infisical", "SCALEWAY_PROJECT_ID"},
		config.CloudflareAPIToken:    {"(set)", "infisical", "CLOUDFLARE_API_TOKEN"},
		config.InfisicalClientSecret: {"(set)", "env", "RAWKODE_CLOUD_INFISICAL_CLIENT_SECRET"},
		config.TalosVersion:          {"v1.12.4", "default", ""},
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %+v, want %+v", name, got[name], w)
		}
	}
	r.assertNoSecrets(t)
}

func TestConfigShowInfisicalIncomplete(t *testing.T) {
	t.Parallel()
	r := run(t, invocation{
		env:  map[string]string{"RAWKODE_CLOUD_INFISICAL_URL": "https://infisical.example.com"},
		args: []string{"config", "show"},
	}) // the default lister fails the test if Infisical is contacted
	r.assertUsageError(t, "infisical-client-id", "infisical-client-secret", "infisical-project-id", "all or nothing")
}

func TestConfigShowInfisicalErrorIsRedacted(t *testing.T) {
	t.Parallel()
	store := &lister{err: errors.New("401: client secret " + clientSecret + " rejected")}
	r := run(t, invocation{env: infisicalEnv, secrets: store, args: []string{"config", "show"}})
	if r.code == 0 {
		t.Fatal("exit 0 although Infisical failed")
	}
	if !strings.Contains(r.err, "Infisical") || !strings.Contains(r.err, "[REDACTED]") || stackTrace.MatchString(r.err) {
		t.Errorf("stderr:\n%s", r.err)
	}
	r.assertNoSecrets(t)
}

func TestConfigShowErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		inv      invocation
		wants    []string
		showsToo bool // the table is printed before the problems
	}{
		{name: "unknown key", inv: invocation{homeFile: "clustre-name: demo\n"},
			wants: []string{`unknown key "clustre-name"`, `did you mean "cluster-name"?`, ".rawkode-cloud.yaml:1"}},
		{name: "wrong type", inv: invocation{homeFile: "keep-on-failure: yes\n"},
			wants: []string{"keep-on-failure", "expected true or false", ".rawkode-cloud.yaml:1"}},
		{name: "malformed duration", inv: invocation{env: map[string]string{"RAWKODE_CLOUD_SERVER_TIMEOUT": "45 minutes"}},
			wants: []string{"server-timeout", `"45 minutes"`, "env RAWKODE_CLOUD_SERVER_TIMEOUT", "duration"}, showsToo: true},
		{name: "bad ip from a flag", inv: invocation{args: []string{"--operator-ip", "10.0.0.1"}},
			wants: []string{"operator-ip", "flag --operator-ip", "public"}, showsToo: true},
		{name: "bad zone", inv: invocation{env: map[string]string{"RAWKODE_CLOUD_SCALEWAY_ZONE": "mars-1"}},
			wants: []string{"scaleway-zone", "env RAWKODE_CLOUD_SCALEWAY_ZONE"}, showsToo: true},
		{name: "bad secret value", inv: invocation{args: []string{"--debug", "--scaleway-secret-key", accessKey}},
			wants: []string{"scaleway-secret-key", "flag --scaleway-secret-key", "UUID"}, showsToo: true},
		{name: "everything at once", inv: invocation{homeFile: "clustre-name: demo\n",
			env: map[string]string{"RAWKODE_CLOUD_SCALEWAY_ZONE": "mars-1"}, args: []string{"--output", "xml"}},
			wants: []string{`unknown key "clustre-name"`, "scaleway-zone", "output", "3 problems"}},
		{name: "missing config file", inv: invocation{args: []string{"--config", "/nonexistent/rawkode.yaml"}},
			wants: []string{"/nonexistent/rawkode.yaml"}},
		{name: "positional argument", inv: invocation{args: []string{"extra"}}, wants: []string{"extra"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inv := tt.inv
			inv.args = append([]string{"config", "show"}, inv.args...)
			r := run(t, inv)
			r.assertUsageError(t, tt.wants...)
			if tt.showsToo != strings.HasPrefix(r.out, "SETTING") {
				t.Errorf("table printed = %v, want %v:\n%s", !tt.showsToo, tt.showsToo, r.out)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := run(t, invocation{args: []string{"version"}})
	if r.code != 0 || !strings.HasPrefix(r.out, "rawkode-cloud dev (commit ") || !strings.Contains(r.out, runtime.Version()) {
		t.Errorf("exit %d, stdout %q", r.code, r.out)
	}
	r = run(t, invocation{args: []string{"version", "--json"}})
	var info map[string]string
	if err := json.Unmarshal([]byte(r.out), &info); err != nil || info["version"] != "dev" || info["go_version"] != runtime.Version() || info["commit"] == "" {
		t.Errorf("version --json = %q (%v)", r.out, err)
	}
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	for shell, marker := range map[string]string{"bash": "complete -o", "zsh": "#compdef rawkode-cloud", "fish": "complete -c rawkode-cloud"} {
		r := run(t, invocation{args: []string{"completion", shell}})
		if r.code != 0 || !strings.Contains(r.out, marker) || r.err != "" {
			t.Errorf("completion %s: exit %d, stderr %q, output lacks %q", shell, r.code, r.err, marker)
		}
	}
	for _, args := range [][]string{{"completion", "powershell"}, {"completion"}, {"completion", "bash", "zsh"}} {
		run(t, invocation{args: args}).assertUsageError(t)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		inv   invocation
		wants []string
	}{
		{"unknown command", invocation{args: []string{"frobnicate"}}, []string{`unknown command "frobnicate"`, "--help"}},
		{"unknown root flag", invocation{args: []string{"--nope"}}, []string{"unknown flag: --nope"}},
		{"unknown version flag", invocation{args: []string{"version", "--nope"}}, []string{"unknown flag: --nope"}},
		{"version argument", invocation{args: []string{"version", "extra"}}, []string{"extra"}},
		{"config show flag", invocation{args: []string{"config", "show", "--nope"}}, []string{"unknown flag: --nope"}},
		{"provision flag", invocation{args: []string{"provision", "--nope"}}, []string{"unknown flag: --nope"}},
		{"plan flag", invocation{args: []string{"plan", "--nope"}}, []string{"unknown flag: --nope"}},
		{"destroy flag", invocation{args: []string{"destroy", "--nope"}}, []string{"unknown flag: --nope"}},
		{"provision argument", invocation{args: []string{"provision", "extra"}}, []string{"extra"}},
		{"plan argument", invocation{args: []string{"plan", "extra"}}, []string{"extra"}},
		{"destroy argument", invocation{args: []string{"destroy", "extra"}}, []string{"extra"}},
		{"flag without value", invocation{args: []string{"plan", "--cluster-name"}}, []string{"cluster-name"}},
		{"bool flag with a word", invocation{args: []string{"provision", "--keep-on-failure=maybe"}}, []string{"keep-on-failure"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, tt.inv)
			r.assertUsageError(t, tt.wants...)
			if r.out != "" {
				t.Errorf("stdout not empty:\n%s", r.out)
			}
		})
	}
}

// TestConfigErrorsStopCommandsFirst: a bad configuration exits 2 before
// provision, plan or destroy contact anything, Infisical included.
func TestConfigErrorsStopCommandsFirst(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"provision", "plan", "destroy"} {
		for name, inv := range map[string]invocation{
			"unknown key": {homeFile: "clustre-name: demo\n", env: infisicalEnv},
			"bad value":   {env: map[string]string{"RAWKODE_CLOUD_SCALEWAY_ZONE": "mars-1", "RAWKODE_CLOUD_CLUSTER_NAME": "demo"}},
			"bad secret":  {env: map[string]string{"RAWKODE_CLOUD_SCALEWAY_SECRET_KEY": accessKey, "RAWKODE_CLOUD_CLUSTER_NAME": "demo"}},
		} {
			t.Run(cmd+"/"+name, func(t *testing.T) {
				t.Parallel()
				inv.args = []string{cmd}
				store := &lister{err: errors.New("must not be called")}
				inv.secrets = store
				r := run(t, inv)
				r.assertUsageError(t)
				if store.count() != 0 {
					t.Errorf("Infisical contacted %d times before the configuration was checked", store.count())
				}
			})
		}
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	r := run(t, invocation{args: []string{"--help"}})
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	for _, w := range []string{"Exit codes:", "  2  usage or configuration error", "130", "provision", "config", "completion"} {
		if !strings.Contains(r.out, w) {
			t.Errorf("help lacks %q", w)
		}
	}
	r = run(t, invocation{args: []string{"config", "show", "--help"}})
	if r.code != 0 || !strings.Contains(r.out, "--scaleway-zone") || !strings.Contains(r.out, "RAWKODE_CLOUD_SCALEWAY_ZONE") {
		t.Errorf("config show --help: exit %d\n%s", r.code, r.out)
	}
}
