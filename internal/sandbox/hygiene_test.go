package sandbox_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rawkode/rawkode-cloud/internal/cli"
	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/provision"
	"github.com/rawkode/rawkode-cloud/internal/redact"
	"github.com/rawkode/rawkode-cloud/internal/sandbox"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
)

// Distinctive values a user would put in flags and the environment. The
// sandbox replaces them with its own (it must never send them anywhere),
// and they must not be printed either.
var userSecrets = map[string]string{
	"--scaleway-secret-key":     "0badc0de-5ec7-4e75-8ec7-0000deadbeef",
	"--cloudflare-api-token":    "leaky-user-cloudflare-token-7e1e",
	"--infisical-client-secret": "leaky-user-infisical-secret-7e1f",
}

const userAccessKeyEnv = "SCWLEAKYUSERACCESS77" // RAWKODE_CLOUD_SCALEWAY_ACCESS_KEY

// secretMaterial is everything secret that exists during a sandbox run:
// the sandbox's own credentials, the Teleport identity's key, the join
// token, the Talos PKI and tokens in the applied configs, and the stored
// talosconfig and kubeconfig.
type secretMaterial struct {
	mu     sync.Mutex
	values map[string]string // value → what it is
}

func (m *secretMaterial) add(what string, values ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range values {
		if len(v) >= 12 {
			m.values[v] = what
		}
	}
}

var (
	longBase64   = regexp.MustCompile(`^[A-Za-z0-9+/=_-]{32,}$`)
	talosToken   = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)
	pemBody      = regexp.MustCompile(`(?m)^[A-Za-z0-9+/=]{40,}$`)
	yamlDocSplit = regexp.MustCompile(`(?m)^---$`)
)

// addYAML collects the secret-looking leaves of YAML documents: long
// base64 (keys, certificates, secrets) and Talos/kubeadm tokens.
func (m *secretMaterial) addYAML(what string, doc []byte) {
	for _, part := range yamlDocSplit.Split(string(doc), -1) {
		var v any
		if yaml.Unmarshal([]byte(part), &v) != nil {
			continue
		}
		walk(v, func(s string) {
			s = strings.TrimSpace(s)
			if longBase64.MatchString(s) || talosToken.MatchString(s) {
				m.add(what, s)
			}
			if strings.Contains(s, "-----BEGIN") {
				m.add(what, pemBody.FindAllString(s, -1)...)
			}
		})
	}
}

func walk(v any, leaf func(string)) {
	switch t := v.(type) {
	case map[string]any:
		for _, x := range t {
			walk(x, leaf)
		}
	case []any:
		for _, x := range t {
			walk(x, leaf)
		}
	case string:
		leaf(t)
	}
}

func (m *secretMaterial) leaks(text string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for v, what := range m.values {
		if strings.Contains(text, v) {
			out = append(out, fmt.Sprintf("%s (%.8s…)", what, v))
		}
	}
	return out
}

func (m *secretMaterial) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.values)
}

type hygieneCase struct {
	name   string
	faults []string
	extra  []string
	want   int
}

// TestNoSecretInAnyOutput runs successes and failures in every output mode,
// with and without --debug, and looks for every secret in stdout and stderr.
func TestNoSecretInAnyOutput(t *testing.T) {
	t.Parallel()
	cases := []hygieneCase{
		{name: "success", want: fail.OK},
		{name: "failure with cleanup", faults: []string{"talos.services=error"}, want: fail.Failed},
		{name: "verification failed", faults: []string{"teleport.agent=never"}, want: fail.LeftRunning},
		{name: "cleanup incomplete", faults: []string{"talos.lockdown=error", "scaleway.delete-server=error", "infisical.delete-secrets=error"}, want: fail.Incomplete},
		{name: "kept on failure", faults: []string{"talos.lockdown=error"}, extra: []string{"--keep-on-failure"}, want: fail.Incomplete},
		{name: "SDK errors passed through", faults: []string{"cloudflare.upsert-record=error", "teleport.create-token=ratelimit@1"}, want: fail.Failed},
	}
	type run struct {
		c     hygieneCase
		mode  string
		debug bool
	}
	var runs []run
	for i, c := range cases {
		for j, mode := range []string{"plain", "json", "tty"} {
			// --debug in every mode and for every case, but not for every
			// pair: half the runs, and the suite stays quick.
			runs = append(runs, run{c, mode, (i+j)%2 == 0})
		}
	}
	type result struct {
		name   string
		issues []string
	}
	results := make([]result, len(runs))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range matrixWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				r := runs[i]
				name := fmt.Sprintf("%s/%s/debug=%v", r.c.name, r.mode, r.debug)
				results[i] = result{name, hygieneRun(t, r.c, r.mode, r.debug)}
			}
		}()
	}
	for i := range runs {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	for _, r := range results {
		for _, issue := range r.issues {
			t.Errorf("%s: %s", r.name, issue)
		}
	}
}

func hygieneRun(t *testing.T, c hygieneCase, mode string, debug bool) []string {
	var issues []string
	m := &secretMaterial{values: map[string]string{}}
	for flag, v := range userSecrets {
		m.add("user's "+flag, v)
	}
	m.add("user's scaleway access key", userAccessKeyEnv)
	m.add("sandbox Scaleway secret key", scaleway.SandboxSecretKey)
	m.add("sandbox Scaleway access key", scaleway.SandboxAccessKey)
	m.add("sandbox Cloudflare token", sandbox.CloudflareToken)
	m.add("sandbox Infisical client secret", sandbox.InfisicalClientSecret)

	args := []string{"provision", "--sandbox", "--sandbox-speed", matrixSpeed, "--cluster-name", "hygiene"}
	switch mode {
	case "tty":
		args = append(args, "--output", "auto") // a live display on the "terminal" below
	default:
		args = append(args, "--output", mode)
	}
	if debug {
		args = append(args, "--debug")
	}
	for _, f := range c.faults {
		args = append(args, "--sandbox-fault", f)
	}
	args = append(args, c.extra...)
	for flag, v := range userSecrets {
		args = append(args, flag, v)
	}
	// The other Infisical settings, so the group is complete (the sandbox
	// replaces all of them anyway).
	args = append(args, "--infisical-url", "https://infisical.example.com", "--infisical-client-id", "user-client", "--infisical-project-id", "user-project",
		"--cloudflare-zone-id", "0123456789abcdef0123456789abcdef", "--cloudflare-dns-name", "k8s.example.com")

	var out, errOut bytes.Buffer
	var mu sync.Mutex
	var sb *sandbox.Sandbox
	// Collect what only exists inside the run (join token, PKI) while the
	// sandbox is still up: when the inventory is printed, just before it
	// closes, and whenever anything is printed (a token deleted by
	// cleanup is gone by the end).
	collect := func() {
		mu.Lock()
		s := sb
		mu.Unlock()
		if s == nil {
			return
		}
		for _, tok := range s.Teleport.Tokens() {
			m.add("Teleport join token", tok.Name)
		}
		for _, n := range s.Nodes() {
			for _, cfg := range n.AppliedConfigs() {
				m.addYAML("Talos machine config", cfg)
				if tok, _, err := machineconfig.TeleportJoin(cfg); err == nil {
					m.add("Teleport join token (in the config)", tok)
				}
			}
		}
		for _, sec := range s.Infisical.Secrets() {
			if v, ok := s.Infisical.Value(sec.Project, sec.Environment, sec.Path, sec.Name); ok {
				m.addYAML("stored "+sec.Name, []byte(v))
			}
		}
	}
	snoop := &lineWriter{w: &out, onLine: func(string) { collect() }}
	env := cli.Env{
		In: strings.NewReader(""), Out: snoop, Err: &errOut,
		LookupEnv: func(k string) (string, bool) {
			if k == "RAWKODE_CLOUD_SCALEWAY_ACCESS_KEY" {
				return userAccessKeyEnv, true
			}
			return "", false
		},
		Home:     t.TempDir(),
		Terminal: mode == "tty",
		OnSandbox: func(s *sandbox.Sandbox) {
			mu.Lock()
			sb = s
			mu.Unlock()
			id, err := s.Teleport.IdentityFile()
			if err == nil {
				m.add("Teleport identity key", pemBody.FindAllString(string(id), -1)...)
			}
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := cli.Execute(ctx, args, env)
	if mode == "tty" {
		// The live display ends with a newline-less line: look at it too.
		collect()
	}
	if code != c.want {
		issues = append(issues, fmt.Sprintf("exit %d, want %d\n%s", code, c.want, errOut.String()))
	}
	if m.count() < 10 {
		issues = append(issues, fmt.Sprintf("only %d secret values collected: the check would prove little", m.count()))
	}
	text := out.String() + "\n" + errOut.String()
	for _, leak := range m.leaks(text) {
		issues = append(issues, "printed: "+leak)
	}
	if strings.Contains(text, "PRIVATE KEY") {
		issues = append(issues, "a PEM private key header was printed")
	}
	return issues
}

// TestOperatorOpeningIsOnlyA32AndClosesOnLockdown checks the emulated node
// itself: before lockdown the Talos and Kubernetes APIs admit the operator's
// address and not its neighbour; after it, neither.
func TestOperatorOpeningIsOnlyA32AndClosesOnLockdown(t *testing.T) {
	t.Parallel()
	neighbour := netip.MustParseAddr("198.51.100.8")
	elsewhere := netip.MustParseAddr("192.0.2.44")
	ports := []int{machineconfig.TalosAPIPort, machineconfig.KubernetesAPIPort}
	sb, err := sandbox.Start(sandbox.Options{Speed: testSpeed})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	cfg := config.New()
	cfg.Set(config.ClusterName, "firewall", config.FromFlag, "--cluster-name")
	sb.Apply(cfg)
	p := provision.New(provision.Options{Config: cfg, Factory: sb.Factory(), Sandbox: true})
	defer p.Close()
	checked := false
	var problems []string
	// Verification has started: the configured node still has the
	// temporary openings. Looked at once, without stopping the run.
	sink := pipeline.SinkFunc(func(e pipeline.Event) {
		if e.Type != pipeline.EventPhaseStart || e.Phase != "Verify and lock down" {
			return
		}
		for _, n := range sb.Nodes() {
			checked = true
			for _, p := range ports {
				if !n.Allowed(p, sandbox.OperatorIP) {
					problems = append(problems, fmt.Sprintf("port %d closed to the operator before lockdown", p))
				}
				for _, other := range []netip.Addr{neighbour, elsewhere} {
					if n.Allowed(p, other) {
						problems = append(problems, fmt.Sprintf("port %d open to %s: the opening is wider than a /32", p, other))
					}
				}
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := (&pipeline.Runner{Phases: p.Phases(), Sink: sink, UndoTimeout: cfg.Duration(config.UndoTimeout)}).Execute(ctx); err != nil {
		t.Fatalf("provision: %v", err)
	}
	if !checked {
		t.Fatal("the node was never looked at before lockdown")
	}
	for _, p := range problems {
		t.Error(p)
	}
	inv := sb.Inventory()
	ip, _ := inv.Servers[0]["ip"].(string)
	n := sb.Node(ip)
	if n == nil {
		t.Fatal("no node after success")
	}
	for _, p := range ports {
		for _, src := range []netip.Addr{sandbox.OperatorIP, neighbour, elsewhere} {
			if n.Allowed(p, src) {
				t.Errorf("port %d still admits %s after lockdown", p, src)
			}
		}
	}
	for i, cfg := range n.AppliedConfigs() {
		fw, err := machineconfig.FirewallRules(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, rule := range fw.Rules {
			if !rule.Operator() {
				continue
			}
			if i == len(n.AppliedConfigs())-1 {
				t.Errorf("the last applied config still has operator rule %s", rule)
			}
			for _, s := range rule.Subnets {
				if s.Bits() != 32 || s.Addr() != sandbox.OperatorIP {
					t.Errorf("operator rule %s opens %s, want %s/32", rule.Name, s, sandbox.OperatorIP)
				}
			}
		}
	}
}

// TestSecretsOutWithoutInfisical: without Infisical the credentials go to
// the --secrets-out directory only, as 0600 files in a 0700 directory, and
// a failed run removes them again with everything else.
func TestSecretsOutWithoutInfisical(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		faults []string
		want   []string // files left
	}{
		{name: "success", want: []string{"kubeconfig", "secrets.yaml", "talosconfig"}},
		{name: "failure", faults: []string{"talos.lockdown=error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			faults, err := sandbox.ParseFaults(tc.faults)
			if err != nil {
				t.Fatal(err)
			}
			sb, err := sandbox.Start(sandbox.Options{Speed: testSpeed, Faults: faults})
			if err != nil {
				t.Fatal(err)
			}
			defer sb.Close()
			dir := filepath.Join(t.TempDir(), "credentials") // created by the run
			cfg := config.New()
			cfg.Set(config.ClusterName, "files", config.FromFlag, "--cluster-name")
			sb.Apply(cfg)
			// No Infisical: the user named a directory instead.
			for _, name := range []string{config.InfisicalURL, config.InfisicalClientID, config.InfisicalClientSecret, config.InfisicalProjectID} {
				cfg.Set(name, "", config.Unset, "")
			}
			cfg.Set(config.SecretsOut, dir, config.FromFlag, "--secrets-out")
			red := redact.New()
			red.Add(cfg.Secrets()...)
			p := provision.New(provision.Options{Config: cfg, Factory: sb.Factory(), Redactor: red, Sandbox: true})
			defer p.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err = (&pipeline.Runner{Phases: p.Phases(), UndoTimeout: cfg.Duration(config.UndoTimeout)}).Execute(ctx)
			if (err == nil) != (tc.faults == nil) {
				t.Fatalf("provision: %v", err)
			}
			if n := sb.Infisical.Counters().Total(); n != 0 {
				t.Errorf("Infisical asked %d times although not configured", n)
			}
			st, err := os.Stat(dir)
			if err != nil {
				t.Fatalf("--secrets-out directory: %v", err)
			}
			if st.Mode().Perm() != 0o700 {
				t.Errorf("directory mode %o, want 700", st.Mode().Perm())
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range entries {
				got = append(got, e.Name())
				info, err := e.Info()
				if err != nil {
					t.Fatal(err)
				}
				if info.Mode().Perm() != 0o600 {
					t.Errorf("%s has mode %o, want 600", e.Name(), info.Mode().Perm())
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("files in --secrets-out = %v, want %v", got, tc.want)
			}
		})
	}
}
