package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/rawkode/rawkode-cloud/internal/config"
)

// fakeEnv is a hermetic environment: nothing from the real process leaks in.
type fakeEnv map[string]string

func (e fakeEnv) lookup(k string) (string, bool) { v, ok := e[k]; return v, ok }

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sources builds Sources from an optional config file body (written to a
// temp dir and passed as Sources.File), env and command-line args.
type sources struct {
	file string // YAML body; "" means no file
	home string // YAML body of ~/.rawkode-cloud.yaml; "" means none
	env  fakeEnv
	args []string
}

func (s sources) load(t *testing.T) (*config.Config, string, error) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	if err := fs.Parse(s.args); err != nil {
		t.Fatalf("parse flags %v: %v", s.args, err)
	}
	home := t.TempDir()
	path := ""
	if s.home != "" {
		path = writeFile(t, home, config.DefaultFileName, s.home)
	}
	if s.file != "" {
		path = writeFile(t, t.TempDir(), "settings.yaml", s.file)
	}
	src := config.Sources{Home: home, LookupEnv: s.env.lookup, Flags: fs}
	if s.file != "" {
		src.File = path
	}
	cfg, err := config.Load(src)
	return cfg, path, err
}

func problemsOf(t *testing.T, err error) config.Problems {
	t.Helper()
	var probs config.Problems
	if !errors.As(err, &probs) {
		t.Fatalf("error %v (%T) is not config.Problems", err, err)
	}
	return probs
}

func findProblem(probs config.Problems, setting string) (config.Problem, bool) {
	for _, p := range probs {
		if p.Setting == setting {
			return p, true
		}
	}
	return config.Problem{}, false
}

func TestPrecedenceAndProvenance(t *testing.T) {
	t.Parallel()
	const zone = config.ScalewayZone
	fileZone := "scaleway-zone: nl-ams-1\n"
	tests := []struct {
		name       string
		src        sources
		want       string
		wantSource config.Source
		// wantOrigin is matched exactly, with {file} replaced by the file path.
		wantOrigin string
	}{
		{name: "default only", want: "fr-par-2", wantSource: config.FromDefault, wantOrigin: ""},
		{name: "file beats default", src: sources{file: "cluster-name: a\n" + fileZone},
			want: "nl-ams-1", wantSource: config.FromFile, wantOrigin: "{file}:2"},
		{name: "default file in home", src: sources{home: fileZone},
			want: "nl-ams-1", wantSource: config.FromFile, wantOrigin: "{file}:1"},
		{name: "env beats file", src: sources{file: fileZone, env: fakeEnv{"RAWKODE_CLOUD_SCALEWAY_ZONE": "pl-waw-1"}},
			want: "pl-waw-1", wantSource: config.FromEnv, wantOrigin: "RAWKODE_CLOUD_SCALEWAY_ZONE"},
		{name: "flag beats env and file", src: sources{file: fileZone, env: fakeEnv{"RAWKODE_CLOUD_SCALEWAY_ZONE": "pl-waw-1"}, args: []string{"--scaleway-zone", "fr-par-1"}},
			want: "fr-par-1", wantSource: config.FromFlag, wantOrigin: "--scaleway-zone"},
		{name: "flag beats default", src: sources{args: []string{"--scaleway-zone=fr-par-1"}},
			want: "fr-par-1", wantSource: config.FromFlag, wantOrigin: "--scaleway-zone"},
		{name: "empty env does not override the file", src: sources{file: fileZone, env: fakeEnv{"RAWKODE_CLOUD_SCALEWAY_ZONE": ""}},
			want: "nl-ams-1", wantSource: config.FromFile, wantOrigin: "{file}:1"},
		{name: "empty file value keeps the default", src: sources{file: "scaleway-zone:\n"},
			want: "fr-par-2", wantSource: config.FromDefault, wantOrigin: ""},
		{name: "quoted empty file value keeps the default", src: sources{file: "scaleway-zone: \"\"\n"},
			want: "fr-par-2", wantSource: config.FromDefault, wantOrigin: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, path, err := tt.src.load(t)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			got := cfg.Value(zone)
			wantOrigin := strings.ReplaceAll(tt.wantOrigin, "{file}", path)
			if got.Raw != tt.want || got.Source != tt.wantSource || got.Origin != wantOrigin {
				t.Errorf("Value(%s) = %+v, want {Raw:%s Source:%s Origin:%s}", zone, got, tt.want, tt.wantSource, wantOrigin)
			}
			if cfg.Get(zone) != tt.want {
				t.Errorf("Get(%s) = %q, want %q", zone, cfg.Get(zone), tt.want)
			}
		})
	}
}

func TestEveryLayerAtOnce(t *testing.T) {
	t.Parallel()
	src := sources{
		file: "cluster-name: from-file\nteleport-proxy: file.example.com:443\noperator-ip: 9.9.9.1\nkeep-on-failure: true\nserver-timeout: 1h\n",
		env: fakeEnv{
			"RAWKODE_CLOUD_TELEPORT_PROXY": "env.example.com:443",
			"RAWKODE_CLOUD_OPERATOR_IP":    "9.9.9.2",
			"RAWKODE_CLOUD_UNDO_TIMEOUT":   "5m",
		},
		args: []string{"--operator-ip", "9.9.9.3", "--keep-on-failure=false"},
	}
	cfg, path, err := src.load(t)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := map[string]config.Value{
		config.ClusterName:   {Raw: "from-file", Source: config.FromFile, Origin: path + ":1"},
		config.TeleportProxy: {Raw: "env.example.com:443", Source: config.FromEnv, Origin: "RAWKODE_CLOUD_TELEPORT_PROXY"},
		config.OperatorIP:    {Raw: "9.9.9.3", Source: config.FromFlag, Origin: "--operator-ip"},
		config.KeepOnFailure: {Raw: "false", Source: config.FromFlag, Origin: "--keep-on-failure"},
		config.ServerTimeout: {Raw: "1h", Source: config.FromFile, Origin: path + ":5"},
		config.UndoTimeout:   {Raw: "5m", Source: config.FromEnv, Origin: "RAWKODE_CLOUD_UNDO_TIMEOUT"},
		config.TalosVersion:  {Raw: "v1.12.4", Source: config.FromDefault},
		config.ScalewayOSID:  {Source: config.Unset},
	}
	for name, w := range want {
		if got := cfg.Value(name); got != w {
			t.Errorf("Value(%s) = %+v, want %+v", name, got, w)
		}
	}
	if cfg.Bool(config.KeepOnFailure) {
		t.Error("Bool(keep-on-failure) = true; the flag set it false over the file's true")
	}
	if got := cfg.Duration(config.ServerTimeout); got != time.Hour {
		t.Errorf("Duration(server-timeout) = %v, want 1h", got)
	}
	if cfg.IsSet(config.ScalewayOSID) {
		t.Error("IsSet(scaleway-os-id) = true for an unset setting")
	}
	if err := cfg.Validate(config.Requirements{}); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestConfigFileLocation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	viaEnv := writeFile(t, dir, "env.yaml", "cluster-name: via-env\n")
	viaFlag := writeFile(t, dir, "flag.yaml", "cluster-name: via-flag\n")
	tests := []struct {
		name       string
		src        sources
		want       string
		wantConfig config.Value
	}{
		{name: "home file", src: sources{home: "cluster-name: via-home\n"}, want: "via-home", wantConfig: config.Value{Source: config.Unset}},
		{name: "env path replaces home file", src: sources{home: "cluster-name: via-home\n", env: fakeEnv{"RAWKODE_CLOUD_CONFIG": viaEnv}},
			want: "via-env", wantConfig: config.Value{Raw: viaEnv, Source: config.FromEnv, Origin: "RAWKODE_CLOUD_CONFIG"}},
		{name: "flag path beats env path", src: sources{env: fakeEnv{"RAWKODE_CLOUD_CONFIG": viaEnv}, args: []string{"--config", viaFlag}},
			want: "via-flag", wantConfig: config.Value{Raw: viaFlag, Source: config.FromFlag, Origin: "--config"}},
		{name: "no file anywhere", src: sources{}, want: "", wantConfig: config.Value{Source: config.Unset}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, _, err := tt.src.load(t)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := cfg.Get(config.ClusterName); got != tt.want {
				t.Errorf("cluster-name = %q, want %q", got, tt.want)
			}
			if got := cfg.Value(config.ConfigFile); got != tt.wantConfig {
				t.Errorf("config = %+v, want %+v", got, tt.wantConfig)
			}
		})
	}
}

func TestExplicitConfigFileMustExist(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	for _, src := range []sources{
		{args: []string{"--config", missing}},
		{env: fakeEnv{"RAWKODE_CLOUD_CONFIG": missing}},
	} {
		_, _, err := src.load(t)
		probs := problemsOf(t, err)
		if len(probs) != 1 || probs[0].Setting != config.ConfigFile || !strings.Contains(probs[0].String(), missing) {
			t.Errorf("Load with missing %s = %v, want one problem about config naming the path", missing, err)
		}
	}
}

func TestFillFromInfisical(t *testing.T) {
	t.Parallel()
	src := sources{
		file: "cluster-name: from-file\n",
		env:  fakeEnv{"RAWKODE_CLOUD_TELEPORT_PROXY": "env.example.com:443"},
		args: []string{"--scaleway-offer-id", "11111111-1111-1111-1111-111111111111"},
	}
	cfg, _, err := src.load(t)
	if err != nil {
		t.Fatal(err)
	}
	store := map[string]string{
		"CLUSTER_NAME":        "from-infisical",                       // file wins
		"TELEPORT_PROXY":      "inf.example.com:443",                  // env wins
		"SCALEWAY_OFFER_ID":   "22222222-2222-2222-2222-222222222222", // flag wins
		"SCALEWAY_ZONE":       "nl-ams-1",                             // only a default: filled
		"SCALEWAY_OS_ID":      "33333333-3333-3333-3333-333333333333", // unset: filled
		"SCALEWAY_SECRET_KEY": "44444444-4444-4444-4444-444444444444", // unset secret: filled
		"SCALEWAY_PROJECT_ID": "",                                     // empty in the store: not filled
		"SOMETHING_ELSE":      "ignored",                              // not a setting
		"OPERATOR_IP":         "9.9.9.10",                             // operator-ip has no Infisical name
	}
	filled := cfg.FillFromInfisical(store)
	wantFilled := []string{config.ScalewaySecretKey, config.ScalewayZone, config.ScalewayOSID}
	slices.Sort(filled)
	slices.Sort(wantFilled)
	if !slices.Equal(filled, wantFilled) {
		t.Errorf("filled = %v, want %v", filled, wantFilled)
	}
	tests := []struct {
		name   string
		raw    string
		source config.Source
	}{
		{config.ClusterName, "from-file", config.FromFile},
		{config.TeleportProxy, "env.example.com:443", config.FromEnv},
		{config.ScalewayOfferID, "11111111-1111-1111-1111-111111111111", config.FromFlag},
		{config.ScalewayZone, "nl-ams-1", config.FromInfisical},
		{config.ScalewayOSID, "33333333-3333-3333-3333-333333333333", config.FromInfisical},
		{config.ScalewaySecretKey, "44444444-4444-4444-4444-444444444444", config.FromInfisical},
		{config.ScalewayProjectID, "", config.Unset},
		{config.OperatorIP, "", config.Unset},
	}
	for _, tt := range tests {
		if got := cfg.Value(tt.name); got.Raw != tt.raw || got.Source != tt.source {
			t.Errorf("%s = %+v, want %q from %s", tt.name, got, tt.raw, tt.source)
		}
	}
	if got := cfg.Value(config.ScalewayZone).Origin; got != "SCALEWAY_ZONE" {
		t.Errorf("scaleway-zone origin = %q, want the Infisical secret name SCALEWAY_ZONE", got)
	}
	if !slices.Contains(cfg.Secrets(), "44444444-4444-4444-4444-444444444444") {
		t.Error("Secrets() misses a secret filled from Infisical")
	}
}

func TestUnknownFileKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		key     string
		want    []string
		wantNot []string
	}{
		{name: "typo", key: "clustre-name", want: []string{`unknown key "clustre-name"`, `did you mean "cluster-name"?`}},
		{name: "underscores", key: "scaleway_zone", want: []string{`unknown key "scaleway_zone"`, `did you mean "scaleway-zone"?`}},
		{name: "missing letter", key: "cloudflare-zone", want: []string{`did you mean "cloudflare-zone-id"?`}},
		{name: "nothing close", key: "completely-unrelated-thing", want: []string{`unknown key "completely-unrelated-thing"`}, wantNot: []string{"did you mean"}},
		{name: "file path in the file", key: "config", want: []string{`"config" cannot be set in the config file`, "--config", "RAWKODE_CLOUD_CONFIG"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, path, err := sources{file: "cluster-name: demo\n" + tt.key + ": x\n"}.load(t)
			probs := problemsOf(t, err)
			if len(probs) != 1 {
				t.Fatalf("problems = %v, want exactly one", probs)
			}
			p := probs[0]
			if p.Setting != tt.key || p.Source != config.FromFile || p.Origin != path+":2" {
				t.Errorf("problem = %+v, want setting %q from file %s:2", p, tt.key, path)
			}
			msg := p.String()
			for _, w := range append(tt.want, path+":2") {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(msg, w) {
					t.Errorf("message %q contains %q", msg, w)
				}
			}
		})
	}
}

func TestEveryUnknownKeyIsReported(t *testing.T) {
	t.Parallel()
	_, _, err := sources{file: "clustre-name: a\nscaleway-zoen: b\nfoo: c\ncluster-name: ok\n"}.load(t)
	probs := problemsOf(t, err)
	for _, key := range []string{"clustre-name", "scaleway-zoen", "foo"} {
		if _, ok := findProblem(probs, key); !ok {
			t.Errorf("no problem about %q in %v", key, probs)
		}
	}
	if len(probs) != 3 {
		t.Errorf("got %d problems, want 3: %v", len(probs), probs)
	}
}

func TestWrongYAMLTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		yaml    string
		setting string
		want    string
	}{
		{"list for a string", "cluster-name: [a, b]\n", config.ClusterName, "found a list"},
		{"block list for a string", "cluster-name:\n  - a\n", config.ClusterName, "found a list"},
		{"map for a string", "scaleway-zone: {a: b}\n", config.ScalewayZone, "found a mapping"},
		{"number for a duration", "server-timeout: 45\n", config.ServerTimeout, "expected a duration with a unit"},
		{"list for a duration", "undo-timeout: [1m]\n", config.UndoTimeout, "found a list"},
		{"word for a bool", "keep-on-failure: yes\n", config.KeepOnFailure, "expected true or false"},
		{"quoted bool", "keep-on-failure: \"true\"\n", config.KeepOnFailure, "expected true or false"},
		{"number for a bool", "keep-on-failure: 1\n", config.KeepOnFailure, "expected true or false"},
		{"map for a bool", "keep-on-failure: {x: 1}\n", config.KeepOnFailure, "found a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, path, err := sources{file: tt.yaml}.load(t)
			probs := problemsOf(t, err)
			p, ok := findProblem(probs, tt.setting)
			if !ok || len(probs) != 1 {
				t.Fatalf("problems = %v, want one about %s", probs, tt.setting)
			}
			if p.Source != config.FromFile || !strings.HasPrefix(p.Origin, path+":") {
				t.Errorf("problem source = %s %s, want the file %s", p.Source, p.Origin, path)
			}
			msg := p.String()
			for _, w := range []string{tt.setting, tt.want, path} {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestMalformedFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"not yaml", "cluster-name: [unclosed\n", "is not valid YAML"},
		{"not a mapping", "- cluster-name\n- demo\n", "must be a mapping"},
		{"bare scalar", "just words\n", "must be a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, path, err := sources{file: tt.yaml}.load(t)
			probs := problemsOf(t, err)
			if len(probs) != 1 || !strings.Contains(probs[0].String(), tt.want) || !strings.Contains(probs[0].String(), path) {
				t.Errorf("problems = %v, want one containing %q and the path", probs, tt.want)
			}
		})
	}
	t.Run("empty file sets nothing", func(t *testing.T) {
		t.Parallel()
		cfg, _, err := sources{file: "# only a comment\n"}.load(t)
		if err != nil || cfg.Value(config.ScalewayZone).Source != config.FromDefault {
			t.Errorf("Load = %v, zone %+v; want no error and defaults", err, cfg.Value(config.ScalewayZone))
		}
	})
}

func TestValidateBadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		src     sources
		setting string
		// want are substrings of the problem; {file} is the file path.
		want []string
	}{
		{"ip not an ip", sources{env: fakeEnv{"RAWKODE_CLOUD_OPERATOR_IP": "not-an-ip"}}, config.OperatorIP,
			[]string{`"not-an-ip"`, "env RAWKODE_CLOUD_OPERATOR_IP", "IP address"}},
		{"ip private", sources{args: []string{"--operator-ip", "10.1.2.3"}}, config.OperatorIP,
			[]string{`"10.1.2.3"`, "flag --operator-ip", "public"}},
		{"ip v6", sources{file: "operator-ip: \"2001:db8::1\"\n"}, config.OperatorIP,
			[]string{"file {file}:1", "IPv4"}},
		{"ip shared range", sources{env: fakeEnv{"RAWKODE_CLOUD_OPERATOR_IP": "100.64.0.1"}}, config.OperatorIP, []string{"public"}},
		{"ip documentation range", sources{env: fakeEnv{"RAWKODE_CLOUD_OPERATOR_IP": "203.0.113.7"}}, config.OperatorIP, []string{"public"}},
		{"zone", sources{args: []string{"--scaleway-zone", "mars-1"}}, config.ScalewayZone,
			[]string{`"mars-1"`, "flag --scaleway-zone", "not a Scaleway zone", "fr-par-2"}},
		{"uuid from file", sources{file: "scaleway-project-id: not-a-uuid\n"}, config.ScalewayProjectID,
			[]string{`"not-a-uuid"`, "file {file}:1", "UUID"}},
		{"uuid offer", sources{env: fakeEnv{"RAWKODE_CLOUD_SCALEWAY_OFFER_ID": "1234"}}, config.ScalewayOfferID, []string{"UUID"}},
		{"dns name without dot", sources{env: fakeEnv{"RAWKODE_CLOUD_CLOUDFLARE_DNS_NAME": "localhost"}}, config.CloudflareDNSName,
			[]string{"fully qualified DNS name"}},
		{"dns name bad label", sources{env: fakeEnv{"RAWKODE_CLOUD_CLOUDFLARE_DNS_NAME": "k8s.exa_mple.com"}}, config.CloudflareDNSName,
			[]string{`"exa_mple"`}},
		{"cluster name", sources{args: []string{"--cluster-name", "Bad_Name"}}, config.ClusterName, []string{"DNS label"}},
		{"url scheme", sources{env: fakeEnv{"RAWKODE_CLOUD_IMAGE_FACTORY_URL": "ftp://factory.example.com"}}, config.ImageFactoryURL,
			[]string{"http(s) URL"}},
		{"url without host", sources{env: fakeEnv{"RAWKODE_CLOUD_INFISICAL_URL": "https://"}}, config.InfisicalURL, []string{"http(s) URL"}},
		{"malformed duration", sources{env: fakeEnv{"RAWKODE_CLOUD_SERVER_TIMEOUT": "ten minutes"}}, config.ServerTimeout,
			[]string{`"ten minutes"`, "env RAWKODE_CLOUD_SERVER_TIMEOUT", "duration"}},
		{"negative duration", sources{args: []string{"--undo-timeout", "-5m"}}, config.UndoTimeout, []string{"greater than zero"}},
		{"float duration in file", sources{file: "talos-mtls-timeout: 1.5\n"}, config.TalosMTLSTimeout, []string{"file {file}:1", "duration"}},
		{"bool from env", sources{env: fakeEnv{"RAWKODE_CLOUD_KEEP_ON_FAILURE": "maybe"}}, config.KeepOnFailure, []string{"true or false"}},
		{"output", sources{args: []string{"--output", "xml"}}, config.Output, []string{"auto, plain, json"}},
		{"talos version", sources{env: fakeEnv{"RAWKODE_CLOUD_TALOS_VERSION": "1.12.4"}}, config.TalosVersion, []string{"v1.12.4"}},
		{"kubernetes version", sources{env: fakeEnv{"RAWKODE_CLOUD_KUBERNETES_VERSION": "v1.35.1"}}, config.KubernetesVersion, []string{"no leading v"}},
		{"schematic", sources{env: fakeEnv{"RAWKODE_CLOUD_TALOS_SCHEMATIC_ID": "abc"}}, config.TalosSchematicID, []string{"64"}},
		{"disk", sources{env: fakeEnv{"RAWKODE_CLOUD_TALOS_INSTALL_DISK": "nvme0n1"}}, config.TalosInstallDisk, []string{"/dev/"}},
		{"teleport proxy without port", sources{env: fakeEnv{"RAWKODE_CLOUD_TELEPORT_PROXY": "teleport.example.com"}}, config.TeleportProxy, []string{"host:port"}},
		{"teleport proxy bad port", sources{env: fakeEnv{"RAWKODE_CLOUD_TELEPORT_PROXY": "teleport.example.com:99999"}}, config.TeleportProxy, []string{"port"}},
		{"cloudflare zone", sources{env: fakeEnv{"RAWKODE_CLOUD_CLOUDFLARE_ZONE_ID": "XYZ"}}, config.CloudflareZoneID, []string{"32 lowercase hex"}},
		{"identity file missing", sources{env: fakeEnv{"RAWKODE_CLOUD_TELEPORT_IDENTITY_FILE": "/nonexistent/identity"}}, config.TeleportIdentityFile, []string{"does not exist"}},
		{"secret path", sources{env: fakeEnv{"RAWKODE_CLOUD_INFISICAL_SECRET_PATH": "relative"}}, config.InfisicalSecretPath, []string{"absolute"}},
		{"environment slug", sources{env: fakeEnv{"RAWKODE_CLOUD_INFISICAL_ENVIRONMENT": "Prod Env"}}, config.InfisicalEnvironment, []string{"slug"}},
		{"domain without dot", sources{args: []string{"--domain", "example"}}, config.Domain, []string{"fully qualified DNS name"}},
		{"acme email", sources{env: fakeEnv{"RAWKODE_CLOUD_ACME_EMAIL": "ops.example.com"}}, config.ACMEEmail, []string{"email address"}},
		{"acme email domain", sources{env: fakeEnv{"RAWKODE_CLOUD_ACME_EMAIL": "ops@localhost"}}, config.ACMEEmail, []string{"fully qualified"}},
		{"bucket uppercase", sources{file: "backup-bucket: My_Backups\n"}, config.BackupBucket, []string{"file {file}:1", "S3 bucket name"}},
		{"bucket too short", sources{env: fakeEnv{"RAWKODE_CLOUD_BACKUP_BUCKET": "pg"}}, config.BackupBucket, []string{"S3 bucket name"}},
		{"backup endpoint", sources{env: fakeEnv{"RAWKODE_CLOUD_BACKUP_ENDPOINT": "s3.fr-par.scw.cloud"}}, config.BackupEndpoint, []string{"http(s) URL"}},
		{"secret store", sources{args: []string{"--platform-secret-store", "vault"}}, config.PlatformSecretStore, []string{"onepassword or infisical"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, path, err := tt.src.load(t)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			probs := problemsOf(t, cfg.Validate(config.Requirements{}))
			p, ok := findProblem(probs, tt.setting)
			if !ok {
				t.Fatalf("no problem about %s in %v", tt.setting, probs)
			}
			if want := cfg.Value(tt.setting); p.Source != want.Source || p.Origin != want.Origin {
				t.Errorf("problem source %s %q, want %s %q", p.Source, p.Origin, want.Source, want.Origin)
			}
			msg := p.String()
			if !strings.HasPrefix(msg, tt.setting+": ") {
				t.Errorf("message %q does not start with the setting name", msg)
			}
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, "{file}", path)
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestValidateAcceptsGoodValues(t *testing.T) {
	t.Parallel()
	identity := writeFile(t, t.TempDir(), "identity", "-----BEGIN CERTIFICATE-----\n")
	src := sources{env: fakeEnv{
		"RAWKODE_CLOUD_CLUSTER_NAME":           "demo-1",
		"RAWKODE_CLOUD_SCALEWAY_ACCESS_KEY":    "SCWABCDEFGHIJ0123456",
		"RAWKODE_CLOUD_SCALEWAY_SECRET_KEY":    "0f0f0f0f-1111-2222-3333-444444444444",
		"RAWKODE_CLOUD_SCALEWAY_PROJECT_ID":    "0f0f0f0f-1111-2222-3333-555555555555",
		"RAWKODE_CLOUD_SCALEWAY_ZONE":          "nl-ams-1",
		"RAWKODE_CLOUD_OPERATOR_IP":            "9.9.9.9",
		"RAWKODE_CLOUD_TELEPORT_PROXY":         "teleport.example.com:443",
		"RAWKODE_CLOUD_TELEPORT_IDENTITY_FILE": identity,
		"RAWKODE_CLOUD_TELEPORT_IDENTITY":      "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----",
		"RAWKODE_CLOUD_CLOUDFLARE_API_TOKEN":   "cf-token-123",
		"RAWKODE_CLOUD_CLOUDFLARE_ZONE_ID":     "0123456789abcdef0123456789abcdef",
		"RAWKODE_CLOUD_CLOUDFLARE_DNS_NAME":    "k8s.example.com.",
		"RAWKODE_CLOUD_KEEP_ON_FAILURE":        "true",
		"RAWKODE_CLOUD_OUTPUT":                 "json",
		"RAWKODE_CLOUD_SERVER_TIMEOUT":         "1h30m",
		"RAWKODE_CLOUD_SECRETS_OUT":            t.TempDir(),
		"RAWKODE_CLOUD_DOMAIN":                 "example.com",
		"RAWKODE_CLOUD_ACME_EMAIL":             "ops@example.com",
		"RAWKODE_CLOUD_BACKUP_BUCKET":          "demo-pg-backups",
		"RAWKODE_CLOUD_PLATFORM_SECRET_STORE":  "infisical",
	}}
	cfg, _, err := src.load(t)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(config.Requirements{Required: []string{config.ClusterName, config.TeleportProxy}}); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestDefaultsAreValid(t *testing.T) {
	t.Parallel()
	if err := config.New().Validate(config.Requirements{}); err != nil {
		t.Errorf("the schema's own defaults do not validate: %v", err)
	}
}

func TestValidateReportsAllProblemsAtOnce(t *testing.T) {
	t.Parallel()
	src := sources{
		file: "scaleway-project-id: nope\n",
		env: fakeEnv{
			"RAWKODE_CLOUD_OPERATOR_IP":     "999.1.1.1",
			"RAWKODE_CLOUD_SERVER_TIMEOUT":  "forever",
			"RAWKODE_CLOUD_CLOUDFLARE_ZONE": "ignored: not a setting variable",
		},
		args: []string{"--scaleway-zone", "moon-1", "--output", "yaml", "--cloudflare-api-token", "tok-abc"},
	}
	cfg, _, err := src.load(t)
	if err != nil {
		t.Fatal(err)
	}
	// Cross-setting rules run in the same round (one round lists
	// everything), but say nothing more about a setting already reported.
	err = cfg.Validate(config.Requirements{
		Required: []string{config.ClusterName, config.TeleportProxy},
		Extra: func(*config.Config) config.Problems {
			return config.Problems{
				{Setting: config.SecretsOut, Source: config.Unset, Message: "needed without Infisical"},
				{Setting: config.ScalewayZone, Source: config.FromFlag, Message: "again"},
				{Setting: config.ClusterName, Source: config.Unset, Message: "again"},
			}
		},
	})
	probs := problemsOf(t, err)
	want := []string{
		config.ScalewayProjectID, config.OperatorIP, config.ServerTimeout, config.ScalewayZone, config.Output, // bad values
		config.ClusterName, config.TeleportProxy, // required
		config.CloudflareZoneID, config.CloudflareDNSName, // group
		config.SecretsOut, // cross-setting
	}
	for _, name := range want {
		if _, ok := findProblem(probs, name); !ok {
			t.Errorf("no problem about %s", name)
		}
	}
	if len(probs) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(probs), len(want), err)
	}
	text := err.Error()
	if !strings.HasPrefix(text, "configuration has 10 problems:\n") || strings.Count(text, "\n  - ") != 10 {
		t.Errorf("error text does not list the 10 problems:\n%s", text)
	}
	// Sorted in schema order, so the output is stable.
	last := -1
	for _, p := range probs {
		i := slices.Index(config.Names(), p.Setting)
		if i < last {
			t.Errorf("problems not in schema order: %v", probs)
			break
		}
		last = i
	}
}

func TestValidateRequiredNamesEveryWay(t *testing.T) {
	t.Parallel()
	probs := problemsOf(t, config.New().Validate(config.Requirements{Required: []string{config.ClusterName, config.OperatorIP}}))
	p, _ := findProblem(probs, config.ClusterName)
	for _, w := range []string{"required", "flag --cluster-name", "env RAWKODE_CLOUD_CLUSTER_NAME", "file key cluster-name", "Infisical secret CLUSTER_NAME"} {
		if !strings.Contains(p.String(), w) {
			t.Errorf("%q does not contain %q", p.String(), w)
		}
	}
	// operator-ip has no Infisical name: the message must not offer one.
	p, _ = findProblem(probs, config.OperatorIP)
	if strings.Contains(p.String(), "Infisical") {
		t.Errorf("%q offers Infisical for a setting that has no Infisical name", p.String())
	}
}

func TestExtraRunsWhenValuesAreFine(t *testing.T) {
	t.Parallel()
	cfg := config.New()
	cfg.Set(config.TalosVersion, "v1.99.0", config.FromFlag, "--talos-version")
	err := cfg.Validate(config.Requirements{Extra: func(c *config.Config) config.Problems {
		return config.Problems{c.ProblemFor(config.TalosVersion, "is not supported by this build")}
	}})
	probs := problemsOf(t, err)
	if len(probs) != 1 || probs[0].String() != `talos-version: value "v1.99.0" from flag --talos-version is not supported by this build` {
		t.Errorf("problems = %q", probs)
	}
}

func TestGroupsAreAllOrNothing(t *testing.T) {
	t.Parallel()
	cf := map[string]string{
		config.CloudflareAPIToken: "cf-token-123",
		config.CloudflareZoneID:   "0123456789abcdef0123456789abcdef",
		config.CloudflareDNSName:  "k8s.example.com",
	}
	inf := map[string]string{
		config.InfisicalURL:          "https://infisical.example.com",
		config.InfisicalClientID:     "client-id",
		config.InfisicalClientSecret: "client-secret",
		config.InfisicalProjectID:    "project",
	}
	pick := func(from map[string]string, names ...string) map[string]string {
		out := map[string]string{}
		for _, n := range names {
			out[n] = from[n]
		}
		return out
	}
	tests := []struct {
		name     string
		set      map[string]string
		required []string
		want     []string // settings with a group problem
		mention  string   // the message names the set ones
	}{
		{name: "cloudflare none", set: nil},
		{name: "cloudflare all", set: cf},
		{name: "cloudflare token only", set: pick(cf, config.CloudflareAPIToken),
			want: []string{config.CloudflareZoneID, config.CloudflareDNSName}, mention: "cloudflare-api-token is set"},
		{name: "cloudflare two of three", set: pick(cf, config.CloudflareZoneID, config.CloudflareDNSName),
			want: []string{config.CloudflareAPIToken}, mention: "cloudflare-zone-id, cloudflare-dns-name are set"},
		{name: "infisical all", set: inf},
		{name: "infisical url only", set: pick(inf, config.InfisicalURL),
			want: []string{config.InfisicalClientID, config.InfisicalClientSecret, config.InfisicalProjectID}, mention: "Infisical settings are all or nothing"},
		{name: "infisical without secret", set: pick(inf, config.InfisicalURL, config.InfisicalClientID, config.InfisicalProjectID),
			want: []string{config.InfisicalClientSecret}, mention: "env RAWKODE_CLOUD_INFISICAL_CLIENT_SECRET"},
		{name: "required member is reported once", set: pick(cf, config.CloudflareAPIToken), required: []string{config.CloudflareZoneID},
			want: []string{config.CloudflareZoneID, config.CloudflareDNSName}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := config.New()
			for k, v := range tt.set {
				cfg.Set(k, v, config.FromFlag, "--"+k)
			}
			err := cfg.Validate(config.Requirements{Required: tt.required})
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			probs := problemsOf(t, err)
			if len(probs) != len(tt.want) {
				t.Errorf("problems = %v, want one each for %v", probs, tt.want)
			}
			for _, name := range tt.want {
				p, ok := findProblem(probs, name)
				if !ok {
					t.Errorf("no problem about %s", name)
					continue
				}
				if p.Source != config.Unset {
					t.Errorf("problem source = %s, want unset", p.Source)
				}
				if !strings.Contains(p.String(), tt.mention) {
					t.Errorf("%q does not contain %q", p.String(), tt.mention)
				}
			}
		})
	}
}

// Distinctive secret values: if one of them shows up in a message, the
// message leaks it.
const (
	leakAccessKey    = "LEAKYACCESSKEY-zebra-7781"
	leakSecretKey    = "leaky-secret-key-walrus-9001"
	leakCFToken      = "leaky cf token with spaces 4242"
	leakClientSecret = "leaky\tclient-secret-tab-1313"
	leakIdentity     = "leaky-identity-without-pem-5150"
)

func TestSecretsNeverInProblems(t *testing.T) {
	t.Parallel()
	leaks := []string{leakAccessKey, leakSecretKey, leakCFToken, leakClientSecret, leakIdentity,
		"leaky-list-item-8080", "leaky-typo-key-value-6060", "leaky-bool-secret-7070"}
	tests := []struct {
		name string
		src  sources
	}{
		{"from env", sources{env: fakeEnv{
			"RAWKODE_CLOUD_SCALEWAY_ACCESS_KEY":     leakAccessKey,
			"RAWKODE_CLOUD_SCALEWAY_SECRET_KEY":     leakSecretKey,
			"RAWKODE_CLOUD_CLOUDFLARE_API_TOKEN":    leakCFToken,
			"RAWKODE_CLOUD_INFISICAL_CLIENT_SECRET": leakClientSecret,
			"RAWKODE_CLOUD_TELEPORT_IDENTITY":       leakIdentity,
		}}},
		{"from flags", sources{args: []string{
			"--scaleway-access-key", leakAccessKey, "--scaleway-secret-key", leakSecretKey,
			"--cloudflare-api-token", leakCFToken, "--infisical-client-secret", leakClientSecret,
			"--teleport-identity", leakIdentity,
		}}},
		{"from file", sources{file: strings.Join([]string{
			"scaleway-access-key: " + leakAccessKey,
			"scaleway-secret-key: " + leakSecretKey,
			"cloudflare-api-token: " + leakCFToken,
			"infisical-client-secret: \"leaky\\tclient-secret-tab-1313\"",
			"teleport-identity: " + leakIdentity,
		}, "\n") + "\n"}},
		{"wrong types in file", sources{file: "scaleway-secret-key: [leaky-list-item-8080]\ncloudflare-api-tokn: leaky-typo-key-value-6060\nteleport-identity: {a: leaky-bool-secret-7070}\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, _, err := tt.src.load(t)
			var text []string
			if err != nil {
				text = append(text, err.Error())
			}
			if verr := cfg.Validate(config.Requirements{Required: []string{config.ClusterName}}); verr != nil {
				text = append(text, verr.Error())
				for _, p := range problemsOf(t, verr) {
					text = append(text, p.Message, p.Origin)
				}
			}
			for _, name := range []string{config.ScalewayAccessKey, config.CloudflareAPIToken} {
				if cfg.IsSet(name) {
					text = append(text, cfg.ProblemFor(name, "is rejected").String())
				}
			}
			all := strings.Join(text, "\n")
			if all == "" {
				t.Fatal("no problems at all; the test values are meant to be invalid")
			}
			for _, s := range leaks {
				if strings.Contains(all, s) {
					t.Errorf("secret %q appears in:\n%s", s, all)
				}
			}
		})
	}
}

func TestSecretsListsOnlySetSecrets(t *testing.T) {
	t.Parallel()
	cfg := config.New()
	cfg.Set(config.ScalewaySecretKey, leakSecretKey, config.FromEnv, "RAWKODE_CLOUD_SCALEWAY_SECRET_KEY")
	cfg.Set(config.ClusterName, "not-secret", config.FromEnv, "RAWKODE_CLOUD_CLUSTER_NAME")
	if got := cfg.Secrets(); !slices.Equal(got, []string{leakSecretKey}) {
		t.Errorf("Secrets() = %q, want only the secret key", got)
	}
}

func TestSchemaIsConsistent(t *testing.T) {
	t.Parallel()
	names, envs, infs := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, s := range config.Schema {
		if names[s.Name] || envs[s.Env()] || (s.Infisical != "" && infs[s.Infisical]) {
			t.Errorf("setting %s is defined twice (name, env or Infisical name)", s.Name)
		}
		names[s.Name], envs[s.Env()], infs[s.Infisical] = true, true, true
		if s.Help == "" || s.Section == "" {
			t.Errorf("setting %s has no help text or section", s.Name)
		}
		if s.Type != config.Bool && s.Check == nil && len(s.Values) == 0 {
			t.Errorf("setting %s has no check and no fixed values", s.Name)
		}
		if !strings.HasPrefix(s.Env(), config.EnvPrefix) || strings.Contains(s.Env(), "-") {
			t.Errorf("setting %s: env %s is not RAWKODE_CLOUD_UPPER_SNAKE", s.Name, s.Env())
		}
	}
	// Every name the code refers to exists.
	for _, name := range []string{
		config.ClusterName, config.ScalewayAccessKey, config.ScalewaySecretKey, config.ScalewayProjectID, config.ScalewayZone,
		config.ScalewayOfferID, config.ScalewayOSID, config.TalosVersion, config.KubernetesVersion, config.TalosSchematicID,
		config.TalosInstallDisk, config.ImageFactoryURL, config.TeleportProxy, config.TeleportIdentityFile, config.TeleportIdentity,
		config.TeleportTokenTTL, config.CloudflareAPIToken, config.CloudflareZoneID, config.CloudflareDNSName, config.InfisicalURL,
		config.InfisicalClientID, config.InfisicalClientSecret, config.InfisicalProjectID, config.InfisicalEnvironment,
		config.InfisicalSecretPath, config.OperatorIP, config.ServerTimeout, config.ServerPollInterval,
		config.TalosMaintenanceTimeout, config.TalosMaintenanceInterval, config.TalosMTLSTimeout, config.TalosMTLSInterval,
		config.ServicesTimeout, config.ServicesInterval, config.TeleportAgentTimeout, config.TeleportAgentPollInterval,
		config.UndoTimeout, config.Output, config.ConfigFile, config.KeepOnFailure, config.SecretsOut,
		config.Domain, config.InfisicalProjectSlug, config.ACMEEmail, config.BackupBucket, config.BackupEndpoint, config.PlatformSecretStore,
	} {
		if _, ok := config.Lookup(name); !ok {
			t.Errorf("constant %q is not in Schema", name)
		}
	}
	for _, g := range config.Groups {
		for _, name := range g.Settings {
			if _, ok := config.Lookup(name); !ok {
				t.Errorf("group %s names unknown setting %s", g.Name, name)
			}
		}
	}
	// The seed's defaults.
	for name, want := range map[string]string{
		config.ScalewayZone: "fr-par-2", config.TalosVersion: "v1.12.4", config.KubernetesVersion: "1.35.1",
		config.ServerTimeout: "45m", config.TalosMaintenanceTimeout: "20m", config.TalosMTLSTimeout: "10m",
		config.ServicesTimeout: "10m", config.TeleportAgentTimeout: "10m", config.Output: "auto",
	} {
		if got := config.New().Get(name); got != want {
			t.Errorf("default %s = %q, want %q", name, got, want)
		}
	}
	// Secrets per the issue.
	for _, name := range []string{config.ScalewayAccessKey, config.ScalewaySecretKey, config.CloudflareAPIToken,
		config.InfisicalClientSecret, config.TeleportIdentity} {
		if s, _ := config.Lookup(name); !s.Secret {
			t.Errorf("%s is not marked secret", name)
		}
	}
}

func TestRegisterFlags(t *testing.T) {
	t.Parallel()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	config.RegisterFlags(fs)
	for _, s := range config.Schema {
		f := fs.Lookup(s.Name)
		if f == nil {
			t.Errorf("no flag for %s", s.Name)
			continue
		}
		if f.DefValue != "" && f.DefValue != "false" {
			t.Errorf("flag --%s carries its own default %q; defaults belong to the schema", s.Name, f.DefValue)
		}
		if !strings.Contains(f.Usage, s.Env()) {
			t.Errorf("flag --%s help does not name %s", s.Name, s.Env())
		}
	}
	// A bool flag takes no value.
	if err := fs.Parse([]string{"--keep-on-failure"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.Sources{Home: t.TempDir(), LookupEnv: fakeEnv{}.lookup, Flags: fs})
	if err != nil || !cfg.Bool(config.KeepOnFailure) || cfg.Value(config.KeepOnFailure).Source != config.FromFlag {
		t.Errorf("--keep-on-failure: err %v, value %+v", err, cfg.Value(config.KeepOnFailure))
	}
}

func TestCheckPublicIPv4(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ip string
		ok bool
	}{
		{"9.9.9.9", true}, {"8.8.8.8", true}, {"203.0.113.7", false}, {"198.51.100.1", false},
		{"10.0.0.1", false}, {"192.168.1.1", false}, {"172.16.0.1", false}, {"127.0.0.1", false},
		{"169.254.1.1", false}, {"100.64.1.1", false}, {"0.0.0.0", false}, {"224.0.0.1", false},
		{"::1", false}, {"2001:db8::1", false}, {"", false}, {"1.2.3", false},
	}
	for _, tt := range tests {
		if err := config.CheckPublicIPv4(tt.ip); (err == nil) != tt.ok {
			t.Errorf("CheckPublicIPv4(%q) = %v, want ok=%v", tt.ip, err, tt.ok)
		}
	}
}

func TestLoadReportsValueProblemsAlongsideFileProblems(t *testing.T) {
	t.Parallel()
	_, path, err := sources{
		file: "clustre-name: demo\ncloudflare-zone-id: [a]\ncloudflare-api-token: tok-abc\ncloudflare-dns-name: k8s.example.com\n",
		env:  fakeEnv{"RAWKODE_CLOUD_SCALEWAY_ZONE": "moon-1"},
	}.load(t)
	probs := problemsOf(t, err)
	for _, name := range []string{"clustre-name", config.CloudflareZoneID, config.ScalewayZone} {
		if _, ok := findProblem(probs, name); !ok {
			t.Errorf("no problem about %s in %v", name, probs)
		}
	}
	// cloudflare-zone-id is wrong in the file; it must not also be reported
	// as missing from its group.
	if len(probs) != 3 {
		t.Errorf("got %d problems, want 3:\n%v", len(probs), err)
	}
	if p, _ := findProblem(probs, config.CloudflareZoneID); !strings.Contains(p.String(), path+":2") {
		t.Errorf("zone problem %q does not name the file line", p.String())
	}
}

// The proxmox topology defaults cni to cilium (its gateway VIP is the load
// balancer the HAProxy VM sends *.apps to); the default follows the
// topology whichever source set it, and any explicit cni wins.
func TestTopologyDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		src        sources
		want       string
		wantSource config.Source
		wantOrigin string
	}{
		{"metal keeps flannel", sources{}, config.CNIFlannel, config.FromDefault, ""},
		{"proxmox by flag", sources{args: []string{"--topology", "proxmox"}}, config.CNICilium, config.FromDefault, "topology proxmox"},
		{"proxmox by file", sources{file: "topology: proxmox\n"}, config.CNICilium, config.FromDefault, "topology proxmox"},
		{"proxmox by env", sources{env: fakeEnv{"RAWKODE_CLOUD_TOPOLOGY": "proxmox"}}, config.CNICilium, config.FromDefault, "topology proxmox"},
		{"explicit flannel on proxmox", sources{args: []string{"--topology", "proxmox", "--cni", "flannel"}}, config.CNIFlannel, config.FromFlag, "--cni"},
		{"file flannel on proxmox", sources{file: "cni: flannel\n", args: []string{"--topology=proxmox"}}, config.CNIFlannel, config.FromFile, "{file}:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, path, err := tt.src.load(t)
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.Value(config.CNI)
			wantOrigin := strings.ReplaceAll(tt.wantOrigin, "{file}", path)
			if got.Raw != tt.want || got.Source != tt.wantSource || got.Origin != wantOrigin || cfg.Get(config.CNI) != tt.want {
				t.Errorf("cni = %+v, want {%s %s %s}", got, tt.want, tt.wantSource, wantOrigin)
			}
		})
	}
	// Infisical still backfills a topology default, like any default.
	cfg, _, err := sources{args: []string{"--topology", "proxmox"}}.load(t)
	if err != nil {
		t.Fatal(err)
	}
	if filled := cfg.FillFromInfisical(map[string]string{"CNI": "flannel"}); !slices.Contains(filled, config.CNI) || cfg.Get(config.CNI) != config.CNIFlannel {
		t.Errorf("Infisical's CNI did not fill the topology default: filled %v, cni %q", filled, cfg.Get(config.CNI))
	}
	// Set after load (the sandbox, resume) moves the default along.
	cfg = config.New()
	cfg.Set(config.Topology, config.TopologyProxmox, config.FromSandbox, "")
	if cfg.Get(config.CNI) != config.CNICilium {
		t.Errorf("cni after topology set = %q", cfg.Get(config.CNI))
	}
}
