package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/cli"
	"github.com/rawkode/rawkode-cloud/internal/sandbox"
)

// badInput is one broken setting (or several) given the way a user would:
// in the config file, the environment, a flag, or stored in Infisical.
type badInput struct {
	name string
	file string            // ~/.rawkode-cloud.yaml
	env  map[string]string // RAWKODE_CLOUD_*
	args []string          // flags after `provision --sandbox`
	// infisical values are stored in the sandbox's Infisical before the run.
	infisical map[string]string
	// setup prepares files the input refers to; it gets a scratch directory
	// and returns extra flags.
	setup func(t *testing.T, dir string) []string
	// wants must all appear in the error: the setting and where it came from.
	wants []string
	// problems is how many configuration problems must be listed, one line
	// each; 0 when the error is not a configuration report (e.g. a flag
	// cobra cannot parse).
	problems int
}

// secretShaped values must never be echoed, even when they are invalid.
const (
	badSecretKey = "leaky-not-a-uuid-but-secret-0451"
	badIdentity  = "leaky-identity-content-without-pem-0452"
	badCFToken   = "leaky-cloudflare-token-0453"
)

func badInputs() []badInput {
	file := func(name, body string, wants ...string) badInput {
		return badInput{name: "file/" + name, file: body, wants: wants, problems: 1}
	}
	env := func(name, key, value string, wants ...string) badInput {
		return badInput{name: "env/" + name, env: map[string]string{key: value}, wants: append(wants, "env "+key), problems: 1}
	}
	flag := func(name string, args []string, wants ...string) badInput {
		return badInput{name: "flag/" + name, args: args, wants: wants, problems: 1}
	}
	inf := func(name, key, value string, wants ...string) badInput {
		return badInput{name: "infisical/" + name, infisical: map[string]string{key: value}, wants: append(wants, "infisical "+key), problems: 1}
	}
	return []badInput{
		// The config file.
		file("malformed YAML", "cluster-name: [unclosed\n", "not valid YAML", ".rawkode-cloud.yaml"),
		file("not a mapping", "- cluster-name\n- demo\n", "must be a mapping"),
		file("unknown key", "clustre-name: demo\n", `unknown key "clustre-name"`, `did you mean "cluster-name"?`, ".rawkode-cloud.yaml:1"),
		file("key only for flags", "config: /etc/other.yaml\n", `key "config" cannot be set in the config file`, "--config"),
		file("bool as a word", "keep-on-failure: yes\n", "keep-on-failure", "expected true or false", ".rawkode-cloud.yaml:1"),
		file("list for a string", "cluster-name: [a, b]\n", "cluster-name", "found a list", ".rawkode-cloud.yaml:1"),
		file("mapping for a string", "talos-version:\n  major: 1\n", "talos-version", "found a mapping", ".rawkode-cloud.yaml:1"),
		file("duration without unit", "server-timeout: 45\n", "server-timeout", "found the number 45", ".rawkode-cloud.yaml:1"),
		file("bad zone", "scaleway-zone: mars-1\n", "scaleway-zone", `"mars-1"`, "file", ".rawkode-cloud.yaml:1"),
		file("bad cluster name", "cluster-name: Prod_Cluster\n", "cluster-name", `"Prod_Cluster"`, ".rawkode-cloud.yaml:1", "DNS label"),
		file("bad DNS name", "cloudflare-api-token: "+badCFToken+"\ncloudflare-zone-id: 0123456789abcdef0123456789abcdef\ncloudflare-dns-name: k8s..example.com\n",
			"cloudflare-dns-name", ".rawkode-cloud.yaml:3", "DNS"),

		// The environment.
		env("bad duration", "RAWKODE_CLOUD_SERVER_TIMEOUT", "45 minutes", "server-timeout", `"45 minutes"`, "duration"),
		env("negative duration", "RAWKODE_CLOUD_TELEPORT_TOKEN_TTL", "-5m", "teleport-token-ttl", "greater than zero"),
		env("zero duration", "RAWKODE_CLOUD_UNDO_TIMEOUT", "0s", "undo-timeout", "greater than zero"),
		env("bad zone", "RAWKODE_CLOUD_SCALEWAY_ZONE", "mars-1", "scaleway-zone", "not a Scaleway zone"),
		env("bad UUID", "RAWKODE_CLOUD_SCALEWAY_PROJECT_ID", "project-42", "scaleway-project-id", "UUID"),
		env("bad offer UUID", "RAWKODE_CLOUD_SCALEWAY_OFFER_ID", "12345678-1234-1234-1234-12345678", "scaleway-offer-id", "UUID"),
		env("private operator IP", "RAWKODE_CLOUD_OPERATOR_IP", "10.0.0.1", "operator-ip", `"10.0.0.1"`),
		env("not an IP", "RAWKODE_CLOUD_OPERATOR_IP", "300.1.2.3", "operator-ip", `"300.1.2.3"`),
		env("CIDR for an address", "RAWKODE_CLOUD_OPERATOR_IP", "198.51.100.0/24", "operator-ip", `"198.51.100.0/24"`),
		env("IPv6 operator IP", "RAWKODE_CLOUD_OPERATOR_IP", "2001:db8::1", "operator-ip", `"2001:db8::1"`),
		env("bad URL scheme", "RAWKODE_CLOUD_IMAGE_FACTORY_URL", "ftp://factory.example.com", "image-factory-url", "http(s) URL"),
		env("URL without host", "RAWKODE_CLOUD_IMAGE_FACTORY_URL", "https://", "image-factory-url", "http(s) URL"),
		env("bool as a word", "RAWKODE_CLOUD_KEEP_ON_FAILURE", "maybe", "keep-on-failure", "true or false"),
		env("bad install disk", "RAWKODE_CLOUD_TALOS_INSTALL_DISK", "sda", "talos-install-disk", "device path"),
		env("bad output", "RAWKODE_CLOUD_OUTPUT", "xml", "output", "auto, plain, json"),
		env("missing config file", "RAWKODE_CLOUD_CONFIG", "/nonexistent/rawkode.yaml", "/nonexistent/rawkode.yaml", "cannot be read"),
		{name: "env/half a Cloudflare group", env: map[string]string{"RAWKODE_CLOUD_CLOUDFLARE_API_TOKEN": badCFToken},
			wants: []string{"cloudflare-zone-id", "cloudflare-dns-name", "all or nothing", "cloudflare-api-token is set", "env RAWKODE_CLOUD_CLOUDFLARE_ZONE_ID"}, problems: 2},
		{name: "env/half an Infisical group", env: map[string]string{"RAWKODE_CLOUD_INFISICAL_URL": "https://infisical.example.com"},
			wants: []string{"infisical-client-id", "infisical-client-secret", "infisical-project-id", "all or nothing"}, problems: 3},
		{name: "env/bad Cloudflare zone ID", env: map[string]string{"RAWKODE_CLOUD_CLOUDFLARE_API_TOKEN": badCFToken,
			"RAWKODE_CLOUD_CLOUDFLARE_ZONE_ID": "ZONE", "RAWKODE_CLOUD_CLOUDFLARE_DNS_NAME": "k8s.example.com"},
			wants: []string{"cloudflare-zone-id", "env RAWKODE_CLOUD_CLOUDFLARE_ZONE_ID", "32 lowercase hex"}, problems: 1},

		// Flags.
		flag("Talos newer than the library", []string{"--talos-version", "v9.9.9"}, "talos-version", `"v9.9.9"`, "flag --talos-version", "cannot be generated for", "newer than the machinery library"),
		flag("Talos older than supported", []string{"--talos-version", "v1.5.0"}, "talos-version", "flag --talos-version", "older than"),
		flag("Talos version without v", []string{"--talos-version", "1.12.4"}, "talos-version", "flag --talos-version", "such as v1.12.4"),
		flag("Kubernetes the Talos release cannot run", []string{"--talos-version", "v1.12.4", "--kubernetes-version", "1.20.0"}, "talos-version", "cannot be generated for", "1.20.0"),
		flag("Kubernetes version with v", []string{"--kubernetes-version", "v1.35.1"}, "kubernetes-version", "flag --kubernetes-version", "no leading v"),
		flag("bad cluster name", []string{"--cluster-name", "-demo-"}, "cluster-name", "flag --cluster-name", "DNS label"),
		flag("empty required value", []string{"--cluster-name", ""}, "cluster-name", "flag --cluster-name", "empty value"),
		flag("empty value of a default", []string{"--talos-version="}, "talos-version", "empty value"),
		flag("bad secret key", []string{"--scaleway-secret-key", badSecretKey}, "scaleway-secret-key", "flag --scaleway-secret-key", "UUID"),
		flag("bad access key", []string{"--scaleway-access-key", "SCWSHORT"}, "scaleway-access-key", "flag --scaleway-access-key", "SCW followed by 17"),
		flag("proxy without port", []string{"--teleport-proxy", "teleport.example.com"}, "teleport-proxy", "flag --teleport-proxy", "host:port"),
		flag("proxy port out of range", []string{"--teleport-proxy", "teleport.example.com:99999"}, "teleport-proxy", "between 1 and 65535"),
		flag("proxy host not a name", []string{"--teleport-proxy", "bad_host!:443"}, "teleport-proxy", "DNS name or an IP"),
		flag("missing identity file", []string{"--teleport-identity-file", "/nonexistent/identity"}, "teleport-identity-file", "flag --teleport-identity-file", "does not exist"),
		flag("identity content not PEM", []string{"--teleport-identity", badIdentity}, "teleport-identity", "flag --teleport-identity", "PEM"),
		flag("bad schematic", []string{"--talos-schematic-id", "vanilla"}, "talos-schematic-id", "64 lowercase hex"),
		flag("bad DNS name", []string{"--cloudflare-api-token", badCFToken, "--cloudflare-zone-id", "0123456789abcdef0123456789abcdef", "--cloudflare-dns-name", "k8s"},
			"cloudflare-dns-name", "flag --cloudflare-dns-name", "fully qualified"),
		flag("bad Infisical slug", []string{"--infisical-environment", "Prod Env"}, "infisical-environment", "flag --infisical-environment", "slug"),
		flag("bad Infisical path", []string{"--infisical-secret-path", "relative/path"}, "infisical-secret-path", "absolute folder path"),
		flag("bad poll interval", []string{"--server-poll-interval=-1s"}, "server-poll-interval", "greater than zero"),
		flag("bad output", []string{"--output", "yaml"}, "output", "flag --output"),
		{name: "flag/identity file is a directory", setup: func(t *testing.T, dir string) []string {
			return []string{"--teleport-identity-file", dir}
		}, wants: []string{"teleport-identity-file", "is a directory"}, problems: 1},
		{name: "flag/unreadable identity file", setup: func(t *testing.T, dir string) []string {
			// A symlink loop cannot be opened even by root (who reads
			// mode-000 files regardless).
			p := filepath.Join(dir, "identity")
			if err := os.Symlink(p, p); err != nil {
				t.Fatal(err)
			}
			return []string{"--teleport-identity-file", p}
		}, wants: []string{"teleport-identity-file", "cannot be read"}, problems: 1},
		{name: "flag/secrets-out is a file", setup: func(t *testing.T, dir string) []string {
			p := filepath.Join(dir, "file")
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return []string{"--secrets-out", p}
		}, wants: []string{"secrets-out", "not a directory"}, problems: 1},
		{name: "flag/bool flag with a word", args: []string{"--keep-on-failure=maybe"}, wants: []string{"keep-on-failure", "maybe"}},
		{name: "flag/sandbox speed zero", args: []string{"--sandbox-speed", "0"}, wants: []string{"--sandbox-speed"}},
		{name: "flag/unknown fault point", args: []string{"--sandbox-fault", "scaleway.explode=error"}, wants: []string{"unknown fault point", "scaleway.explode"}},
		{name: "flag/unknown fault kind", args: []string{"--sandbox-fault", "scaleway.create-server=explode"}, wants: []string{"unknown kind", "explode"}},
		{name: "flag/missing config file", args: []string{"--config", "/nonexistent/rawkode.yaml"}, wants: []string{"/nonexistent/rawkode.yaml", "flag --config", "cannot be read"}, problems: 1},

		// Several sources at once: every problem is reported in one round.
		{name: "all/one problem per source", file: "clustre-name: demo\n",
			env:   map[string]string{"RAWKODE_CLOUD_SCALEWAY_ZONE": "mars-1"},
			args:  []string{"--output", "xml", "--talos-install-disk", "sda"},
			wants: []string{`unknown key "clustre-name"`, "env RAWKODE_CLOUD_SCALEWAY_ZONE", "flag --output", "flag --talos-install-disk"}, problems: 4},

		// Values stored in Infisical (the sandbox's own): the only inputs for
		// which a service is asked, because Infisical is where they live.
		inf("Talos newer than the library", "TALOS_VERSION", "v9.9.9", "talos-version", "cannot be generated for"),
		inf("Talos version not a version", "TALOS_VERSION", "latest", "talos-version", `"latest"`),
		inf("Kubernetes version with v", "KUBERNETES_VERSION", "v1.35", "kubernetes-version", "no leading v"),
		inf("bad schematic", "TALOS_SCHEMATIC_ID", "abc", "talos-schematic-id", "64 lowercase hex"),
		inf("bad install disk", "TALOS_INSTALL_DISK", "nvme0n1", "talos-install-disk", "device path"),
		inf("bad delivery", "TALOS_CONFIG_DELIVERY", "pxe", "talos-config-delivery", "maintenance or install"),
		inf("bad duration", "TELEPORT_TOKEN_TTL", "forever", "teleport-token-ttl", "duration"),
		inf("zero duration", "TELEPORT_TOKEN_TTL", "0s", "teleport-token-ttl", "greater than zero"),
	}
}

// replacedBySandbox reports whether the problem is about a setting the
// sandbox replaces with its own value.
func replacedBySandbox(wants []string) bool {
	for _, w := range wants {
		for _, r := range sandbox.Replaces() {
			if w == r {
				return true
			}
		}
	}
	return false
}

var noStackTrace = regexp.MustCompile(`goroutine|panic|\.go:\d*`)

// TestBadInputCorpus: every bad input exits 2 with one clear message per
// problem naming the setting and its source, no stack trace, no secret,
// and without a single request to any service (Infisical aside, when the
// bad value lives there).
func TestBadInputCorpus(t *testing.T) {
	t.Parallel()
	cases := badInputs()
	if len(cases) < 40 {
		t.Fatalf("corpus has %d inputs, want at least 40", len(cases))
	}
	for _, bi := range cases {
		t.Run(bi.name, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			if bi.file != "" {
				if err := os.WriteFile(filepath.Join(home, ".rawkode-cloud.yaml"), []byte(bi.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"provision", "--sandbox", "--sandbox-speed", fast}
			args = append(args, bi.args...)
			if bi.setup != nil {
				args = append(args, bi.setup(t, t.TempDir())...)
			}
			var out, errOut bytes.Buffer
			var mu sync.Mutex
			var sb *sandbox.Sandbox
			env := cli.Env{
				In: strings.NewReader(""), Out: &out, Err: &errOut, Home: home,
				LookupEnv: func(k string) (string, bool) { v, ok := bi.env[k]; return v, ok },
				OnSandbox: func(s *sandbox.Sandbox) {
					mu.Lock()
					sb = s
					mu.Unlock()
					for k, v := range bi.infisical {
						s.Infisical.Put(sandbox.InfisicalProjectID, "prod", "/", k, v)
					}
				},
			}
			code := cli.Execute(context.Background(), args, env)
			stderr := errOut.String()
			if replacedBySandbox(bi.wants) && len(bi.infisical) == 0 && bi.problems <= 1 {
				// The sandbox never uses what it replaces: a bad value
				// there is listed as ignored, like a good one.
				if code != 0 || !strings.Contains(out.String(), "ignored: ") {
					t.Fatalf("exit %d, want 0 with the value ignored\nstderr:\n%s\nstdout:\n%s", code, stderr, out.String())
				}
				return
			}
			if code != 2 {
				t.Fatalf("exit %d, want 2\nstderr:\n%s\nstdout:\n%s", code, stderr, out.String())
			}
			if !strings.HasPrefix(stderr, "Error: ") || strings.Count(stderr, "Error: ") != 1 {
				t.Errorf("stderr is not one error message:\n%s", stderr)
			}
			if m := noStackTrace.FindString(stderr); m != "" {
				t.Errorf("stderr has %q, like a stack trace:\n%s", m, stderr)
			}
			for _, w := range bi.wants {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if bi.problems > 0 {
				lines := 0
				for _, l := range strings.Split(stderr, "\n") {
					if strings.HasPrefix(l, "  - ") {
						lines++
					}
				}
				if lines != bi.problems {
					t.Errorf("%d problem lines, want %d:\n%s", lines, bi.problems, stderr)
				}
			}
			for _, s := range []string{badSecretKey, badIdentity, badCFToken} {
				if strings.Contains(stderr+out.String(), s) {
					t.Errorf("secret value %q printed:\n%s", s, stderr)
				}
			}

			mu.Lock()
			defer mu.Unlock()
			if sb == nil {
				return // stopped before the sandbox even started: nothing could be asked
			}
			calls := map[string]int{
				"scaleway":   sb.Scaleway.Counters().Total(),
				"cloudflare": sb.Cloudflare.Counters().Total(),
				"teleport":   sb.Teleport.Counters().Total(),
				"ipdetect":   sb.IP.Counters().Total(),
				"talos":      len(sb.Nodes()),
			}
			for svc, n := range calls {
				if n != 0 {
					t.Errorf("%d request(s) to %s for a bad input: %v", n, svc, calls)
				}
			}
			inf := sb.Infisical.Counters().Total()
			switch {
			case bi.infisical == nil && inf != 0:
				t.Errorf("%d request(s) to Infisical for a bad input that does not live there: %v", inf, sb.Infisical.Counters().Snapshot())
			case bi.infisical != nil && inf == 0:
				t.Error("the value lives in Infisical, yet Infisical was not asked")
			}
		})
	}
}
