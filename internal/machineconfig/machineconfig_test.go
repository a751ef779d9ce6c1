package machineconfig_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"github.com/rawkode/rawkode-cloud/internal/golden"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"github.com/siderolabs/talos/pkg/machinery/config/validation"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	sigsyaml "sigs.k8s.io/yaml"

	clientconfig "github.com/siderolabs/talos/pkg/machinery/client/config"

	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
)

// Distinctive secret values: they must show up in the configs and nowhere
// else (errors, logs).
const (
	joinToken       = "tok-JOIN-7f3a9c2e51"
	infisicalID     = "id-INFISICAL-0b8d4e"
	infisicalSecret = "sec-INFISICAL-c93f17aa2d"
	schematic       = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
)

var (
	publicIP   = netip.MustParseAddr("203.0.113.10")
	operatorIP = netip.MustParseAddr("198.51.100.7")
	fixedTime  = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

// pinnedBundle returns the committed secrets bundle, so golden output is
// deterministic; with -update it creates the file when it is missing.
func pinnedBundle(t *testing.T) *secrets.Bundle {
	t.Helper()

	b, err := loadPinnedBundle()
	if err != nil {
		t.Fatal(err)
	}

	// A copy per caller: Generate must not depend on shared mutable input.
	clone := *b

	return &clone
}

// loadPinnedBundle reads (or, once, creates) testdata/secrets.yaml a single
// time per test binary, so parallel tests never race on the file.
var loadPinnedBundle = sync.OnceValues(func() (*secrets.Bundle, error) {
	path := filepath.Join("testdata", "secrets.yaml")

	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && golden.Updating() {
		b, genErr := secrets.NewBundle(secrets.NewFixedClock(fixedTime), nil)
		if genErr != nil {
			return nil, genErr
		}

		if data, err = machineconfig.MarshalSecrets(b); err != nil {
			return nil, err
		}

		err = os.WriteFile(path, data, 0o600)
	}

	if err != nil {
		return nil, err
	}

	return machineconfig.UnmarshalSecrets(data)
})

func validInput(t *testing.T) machineconfig.Input {
	t.Helper()

	return machineconfig.Input{
		ClusterName:           "rawkode",
		PublicIP:              publicIP,
		DNSName:               "node.rawkode.example",
		KubernetesVersion:     "1.35.0",
		TalosVersion:          "v1.12.4",
		SchematicID:           schematic,
		InstallDisk:           "/dev/nvme0n1",
		OperatorIP:            operatorIP,
		TeleportProxy:         "teleport.rawkode.example:443",
		TeleportJoinToken:     joinToken,
		InfisicalClientID:     infisicalID,
		InfisicalClientSecret: infisicalSecret,
		Secrets:               pinnedBundle(t),
		Clock:                 secrets.NewFixedClock(fixedTime),
	}
}

func result(t *testing.T) *machineconfig.Result {
	t.Helper()

	res, err := machineconfig.Generate(validInput(t))
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}

	return res
}

func TestGenerateGolden(t *testing.T) {
	t.Parallel()

	res := result(t)

	golden.Compare(t, filepath.Join("testdata", "controlplane.yaml"), res.ControlPlane)
	golden.Compare(t, filepath.Join("testdata", "controlplane-lockdown.yaml"), res.Lockdown)
	// The client key is random on every generation: the golden file holds
	// a placeholder, and TestTalosconfig checks the real certificate.
	golden.Compare(t, filepath.Join("testdata", "talosconfig"), redactClientCert(res.Talosconfig))
}

var clientCertRE = regexp.MustCompile(`(?m)^(\s+(crt|key)): \S+$`)

func redactClientCert(b []byte) []byte {
	return clientCertRE.ReplaceAll(b, []byte("$1: REDACTED"))
}

func TestGenerateKeepsCallersBundle(t *testing.T) {
	t.Parallel()

	in := validInput(t)
	in.Secrets.Clock = secrets.NewClock()
	before := in.Secrets.Clock

	if _, err := machineconfig.Generate(in); err != nil {
		t.Fatal(err)
	}

	if in.Secrets.Clock != before {
		t.Error("Generate replaced the clock of the caller's bundle")
	}
}

func TestTalosconfig(t *testing.T) {
	t.Parallel()

	res := result(t)

	cfg, err := clientconfig.FromBytes(res.Talosconfig)
	if err != nil {
		t.Fatal(err)
	}

	ctx := cfg.Contexts[cfg.Context]
	if cfg.Context != "rawkode" || ctx == nil {
		t.Fatalf("context = %q, want rawkode", cfg.Context)
	}

	if !slices.Equal(ctx.Endpoints, []string{publicIP.String()}) || !slices.Equal(ctx.Nodes, []string{publicIP.String()}) {
		t.Errorf("endpoints %v nodes %v, want the public IP", ctx.Endpoints, ctx.Nodes)
	}

	crt := decodeCert(t, ctx.Crt)
	ca := decodeCert(t, ctx.CA)

	if err := crt.CheckSignatureFrom(ca); err != nil {
		t.Errorf("client certificate is not signed by the Talos CA: %v", err)
	}

	if !crt.NotBefore.Equal(fixedTime) {
		t.Errorf("client certificate NotBefore = %v, want the input clock's %v", crt.NotBefore, fixedTime)
	}
}

func decodeCert(t *testing.T, b64 string) *x509.Certificate {
	t.Helper()

	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}

	block, _ := pem.Decode(raw)
	if block == nil {
		t.Fatal("no PEM block")
	}

	crt, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}

	return crt
}

func TestConfigsValidateForMetal(t *testing.T) {
	t.Parallel()

	res := result(t)

	for name, cfg := range map[string][]byte{"initial": res.ControlPlane, "lockdown": res.Lockdown} {
		provider, err := configloader.NewFromBytes(cfg)
		if err != nil {
			t.Fatalf("%s: load: %v", name, err)
		}

		mode := machineconfig.MetalMode{}
		if mode.String() != "metal" || !mode.RequiresInstall() || mode.InContainer() {
			t.Fatalf("mode %v is not metal", mode)
		}

		if _, err := provider.Validate(mode, validation.WithLocal()); err != nil {
			t.Errorf("%s: Validate: %v", name, err)
		}

		m, c := provider.Machine(), provider.Cluster()

		checks := []struct {
			what      string
			got, want any
		}{
			{"machine type", m.Type().String(), "controlplane"},
			{"endpoint", c.Endpoint().String(), "https://node.rawkode.example:6443"},
			{"install disk", m.Install().Disk(), "/dev/nvme0n1"},
			{"install image", m.Install().Image(), "factory.talos.dev/installer/" + schematic + ":v1.12.4"},
			{"scheduling on control planes", c.ScheduleOnControlPlanes(), true},
			{"apiserver image", c.APIServer().Image(), "registry.k8s.io/kube-apiserver:v1.35.0"},
			{"kubelet image", m.Kubelet().Image(), "ghcr.io/siderolabs/kubelet:v1.35.0"},
		}

		for _, ch := range checks {
			if ch.got != ch.want {
				t.Errorf("%s: %s = %v, want %v", name, ch.what, ch.got, ch.want)
			}
		}

		for _, san := range []string{publicIP.String(), "node.rawkode.example"} {
			if !slices.Contains(c.CertSANs(), san) {
				t.Errorf("%s: API server cert SANs %v lack %s", name, c.CertSANs(), san)
			}

			if !slices.Contains(m.Security().CertSANs(), san) {
				t.Errorf("%s: Talos API cert SANs %v lack %s", name, m.Security().CertSANs(), san)
			}
		}
	}
}

// strictDecoders maps each kind the manifests may hold to a strict decoder
// into the Kubernetes API type: unknown fields are errors.
var strictDecoders = map[string]func([]byte) (any, error){
	"Namespace":          decodeStrict[corev1.Namespace],
	"Secret":             decodeStrict[corev1.Secret],
	"ConfigMap":          decodeStrict[corev1.ConfigMap],
	"ServiceAccount":     decodeStrict[corev1.ServiceAccount],
	"ClusterRole":        decodeStrict[rbacv1.ClusterRole],
	"ClusterRoleBinding": decodeStrict[rbacv1.ClusterRoleBinding],
	"Role":               decodeStrict[rbacv1.Role],
	"RoleBinding":        decodeStrict[rbacv1.RoleBinding],
	"StatefulSet":        decodeStrict[appsv1.StatefulSet],
}

func decodeStrict[T any](doc []byte) (any, error) {
	var obj T
	if err := sigsyaml.UnmarshalStrict(doc, &obj); err != nil {
		return nil, err
	}

	return &obj, nil
}

type decoded struct {
	manifest string
	kind     string
	obj      any
}

func decodeManifests(t *testing.T, cfg []byte) map[string]decoded {
	t.Helper()

	manifests, err := machineconfig.InlineManifests(cfg)
	if err != nil {
		t.Fatal(err)
	}

	objects := map[string]decoded{}

	for _, m := range manifests {
		for _, doc := range strings.Split(m.Contents, "\n---\n") {
			var head struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name      string `json:"name"`
					Namespace string `json:"namespace"`
				} `json:"metadata"`
			}

			if err := sigsyaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s: %v", m.Name, err)
			}

			decode, ok := strictDecoders[head.Kind]
			if !ok {
				t.Fatalf("%s: unexpected kind %q", m.Name, head.Kind)
			}

			obj, err := decode([]byte(doc))
			if err != nil {
				t.Fatalf("%s: %s %s does not decode strictly: %v", m.Name, head.Kind, head.Metadata.Name, err)
			}

			key := head.Kind + "/" + head.Metadata.Namespace + "/" + head.Metadata.Name
			if _, dup := objects[key]; dup {
				t.Fatalf("%s: duplicate object %s", m.Name, key)
			}

			objects[key] = decoded{manifest: m.Name, kind: head.Kind, obj: obj}
		}
	}

	return objects
}

func TestInlineManifests(t *testing.T) {
	t.Parallel()

	res := result(t)

	manifests, err := machineconfig.InlineManifests(res.ControlPlane)
	if err != nil {
		t.Fatal(err)
	}

	var names []string
	for _, m := range manifests {
		names = append(names, m.Name)
	}

	wantNames := []string{"infisical-machine-identity", "teleport-kube-agent", "teleport-join-token"}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("inline manifests %v, want %v", names, wantNames)
	}

	objects := decodeManifests(t, res.ControlPlane)

	wantObjects := []string{
		"Namespace//infisical", "Secret/infisical/infisical-machine-identity",
		"Namespace//teleport", "ServiceAccount/teleport/teleport-kube-agent",
		"ClusterRole//teleport-kube-agent", "ClusterRoleBinding//teleport-kube-agent",
		"Role/teleport/teleport-kube-agent", "RoleBinding/teleport/teleport-kube-agent",
		"ConfigMap/teleport/teleport-kube-agent", "StatefulSet/teleport/teleport-kube-agent",
		"Role/kube-system/rawkode-cloud-inside-route", "RoleBinding/kube-system/rawkode-cloud-inside-route",
		"ClusterRole//rawkode-cloud-inside-route", "ClusterRoleBinding//rawkode-cloud-inside-route",
		"Secret/teleport/teleport-join-token",
	}
	for _, key := range wantObjects {
		if _, ok := objects[key]; !ok {
			t.Errorf("missing %s", key)
		}
	}

	if len(objects) != len(wantObjects) {
		t.Errorf("got %d objects, want %d", len(objects), len(wantObjects))
	}

	identity := objects["Secret/infisical/infisical-machine-identity"].obj.(*corev1.Secret)
	if string(identity.Data["clientId"]) != infisicalID || string(identity.Data["clientSecret"]) != infisicalSecret {
		t.Errorf("infisical secret data = %v", identity.Data)
	}

	token := objects["Secret/teleport/teleport-join-token"].obj.(*corev1.Secret)
	if string(token.Data["auth-token"]) != joinToken {
		t.Errorf("join token secret data = %v", token.Data)
	}

	checkClusterRole(t, objects["ClusterRole//teleport-kube-agent"].obj.(*rbacv1.ClusterRole))
	checkTeleportYAML(t, objects["ConfigMap/teleport/teleport-kube-agent"].obj.(*corev1.ConfigMap))
	checkAgentWorkload(t, objects["StatefulSet/teleport/teleport-kube-agent"].obj.(*appsv1.StatefulSet), machineconfig.DefaultTeleportAgentVersion)

	// The lockdown config carries exactly the same manifests.
	lockdown, err := machineconfig.InlineManifests(res.Lockdown)
	if err != nil {
		t.Fatal(err)
	}

	if diff := cmp.Diff(manifests, lockdown); diff != "" {
		t.Errorf("lockdown manifests differ:\n%s", diff)
	}
}

func checkClusterRole(t *testing.T, role *rbacv1.ClusterRole) {
	t.Helper()

	want := map[string]string{
		"/users/impersonate":           "",
		"/groups/impersonate":          "",
		"/serviceaccounts/impersonate": "",
		"/pods/get":                    "",
		"authorization.k8s.io/selfsubjectaccessreviews/create": "",
	}

	for _, rule := range role.Rules {
		for _, g := range rule.APIGroups {
			for _, r := range rule.Resources {
				for _, v := range rule.Verbs {
					delete(want, g+"/"+r+"/"+v)
				}
			}
		}
	}

	if len(want) > 0 {
		t.Errorf("cluster role lacks %v", want)
	}
}

func checkTeleportYAML(t *testing.T, cm *corev1.ConfigMap) {
	t.Helper()

	var tc struct {
		Version  string `yaml:"version"`
		Teleport struct {
			JoinParams struct {
				Method    string `yaml:"method"`
				TokenName string `yaml:"token_name"`
			} `yaml:"join_params"`
			ProxyServer string         `yaml:"proxy_server"`
			Log         map[string]any `yaml:"log"`
		} `yaml:"teleport"`
		KubernetesService struct {
			Enabled         bool   `yaml:"enabled"`
			KubeClusterName string `yaml:"kube_cluster_name"`
		} `yaml:"kubernetes_service"`
		AuthService  struct{ Enabled bool } `yaml:"auth_service"`
		ProxyService struct{ Enabled bool } `yaml:"proxy_service"`
		SSHService   struct{ Enabled bool } `yaml:"ssh_service"`
	}

	dec := yaml.NewDecoder(strings.NewReader(cm.Data["teleport.yaml"]))
	dec.KnownFields(true)

	if err := dec.Decode(&tc); err != nil {
		t.Fatalf("teleport.yaml: %v", err)
	}

	if tc.Version != "v3" || tc.Teleport.JoinParams.Method != "token" ||
		tc.Teleport.JoinParams.TokenName != "/etc/teleport-secrets/auth-token" ||
		tc.Teleport.ProxyServer != "teleport.rawkode.example:443" ||
		!tc.KubernetesService.Enabled || tc.KubernetesService.KubeClusterName != "rawkode" ||
		tc.AuthService.Enabled || tc.ProxyService.Enabled || tc.SSHService.Enabled {
		t.Errorf("teleport.yaml is not a kube-agent config:\n%s", cm.Data["teleport.yaml"])
	}

	if strings.Contains(cm.Data["teleport.yaml"], joinToken) {
		t.Error("teleport.yaml holds the join token itself; it must read it from the Secret")
	}
}

func checkAgentWorkload(t *testing.T, sts *appsv1.StatefulSet, version string) {
	t.Helper()

	pod := sts.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("agent has %d containers", len(pod.Containers))
	}

	if got, want := pod.Containers[0].Image, "public.ecr.aws/gravitational/teleport-distroless:"+version; got != want {
		t.Errorf("agent image = %q, want %q", got, want)
	}

	if pod.ServiceAccountName != "teleport-kube-agent" {
		t.Errorf("agent service account = %q", pod.ServiceAccountName)
	}

	mounts := map[string]string{}
	for _, m := range pod.Containers[0].VolumeMounts {
		mounts[m.Name] = m.MountPath
	}

	if mounts["auth-token"] != "/etc/teleport-secrets" || mounts["config"] != "/etc/teleport" {
		t.Errorf("agent mounts = %v", mounts)
	}
}

func TestTeleportAgentVersionIsSettable(t *testing.T) {
	t.Parallel()

	in := validInput(t)
	in.TeleportAgentVersion = "18.1.2"

	res, err := machineconfig.Generate(in)
	if err != nil {
		t.Fatal(err)
	}

	objects := decodeManifests(t, res.ControlPlane)
	checkAgentWorkload(t, objects["StatefulSet/teleport/teleport-kube-agent"].obj.(*appsv1.StatefulSet), "18.1.2")
}

func TestTeleportJoin(t *testing.T) {
	t.Parallel()

	res := result(t)

	for name, cfg := range map[string][]byte{"initial": res.ControlPlane, "lockdown": res.Lockdown} {
		token, cluster, err := machineconfig.TeleportJoin(cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}

		if token != joinToken || cluster != "rawkode" {
			t.Errorf("%s: TeleportJoin = %q, %q", name, token, cluster)
		}
	}

	if _, _, err := machineconfig.TeleportJoin([]byte("not: [a config")); err == nil {
		t.Error("TeleportJoin accepted garbage")
	}
}

// admits reports whether the firewall lets a new TCP connection from src to
// port in, following Talos semantics (see firewallDocuments).
func admits(fw machineconfig.Firewall, port uint16, src netip.Addr) bool {
	block := fw.DefaultAction == "block"

	for _, r := range fw.Rules {
		if r.Protocol != "tcp" || !slices.ContainsFunc(r.Ports, func(p [2]uint16) bool { return port >= p[0] && port <= p[1] }) {
			continue
		}

		in := slices.ContainsFunc(r.Subnets, func(p netip.Prefix) bool { return p.Contains(src) })
		if block && in {
			return true
		}

		if !block && !in {
			return false
		}
	}

	return !block
}

func TestFirewall(t *testing.T) {
	t.Parallel()

	res := result(t)

	initial, err := machineconfig.FirewallRules(res.ControlPlane)
	if err != nil {
		t.Fatal(err)
	}

	lockdown, err := machineconfig.FirewallRules(res.Lockdown)
	if err != nil {
		t.Fatal(err)
	}

	for name, fw := range map[string]machineconfig.Firewall{"initial": initial, "lockdown": lockdown} {
		if fw.DefaultAction != "block" {
			t.Errorf("%s: default action %q, want block", name, fw.DefaultAction)
		}

		seen := map[string]bool{}
		for _, r := range fw.Rules {
			if seen[r.Name] {
				t.Errorf("%s: rule name %q is not unique", name, r.Name)
			}

			seen[r.Name] = true

			if r.Operator() {
				for _, s := range r.Subnets {
					if s != netip.PrefixFrom(operatorIP, 32) {
						t.Errorf("%s: operator rule %s opens %s, want %s/32 only", name, r.Name, s, operatorIP)
					}
				}
			}
		}
	}

	var operatorRules []string
	for _, r := range initial.Rules {
		if r.Operator() {
			operatorRules = append(operatorRules, r.String())
		}
	}

	wantOperator := []string{
		"operator-talos-api: tcp/50000 from 198.51.100.7/32",
		"operator-kube-api: tcp/6443 from 198.51.100.7/32",
	}
	if !slices.Equal(operatorRules, wantOperator) {
		t.Errorf("operator rules = %q, want %q", operatorRules, wantOperator)
	}

	// Lockdown is the initial firewall minus the operator rules.
	withoutOperator := slices.DeleteFunc(slices.Clone(initial.Rules), machineconfig.FirewallRule.Operator)
	if diff := cmp.Diff(withoutOperator, lockdown.Rules, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("lockdown rules are not the initial rules minus the operator rules:\n%s", diff)
	}

	var (
		internet = netip.MustParseAddr("192.0.2.99")
		pod      = netip.MustParseAddr("10.244.0.17")
		service  = netip.MustParseAddr("10.96.0.10")
	)

	tests := []struct {
		name            string
		port            uint16
		src             netip.Addr
		initial, locked bool
	}{
		{"operator to Talos API", 50000, operatorIP, true, false},
		{"operator to Kubernetes API", 6443, operatorIP, true, false},
		{"internet to Talos API", 50000, internet, false, false},
		{"internet to Kubernetes API", 6443, internet, false, false},
		{"pod to Kubernetes API", 6443, pod, true, true},
		{"service IP to Kubernetes API", 6443, service, true, true},
		{"node to Kubernetes API", 6443, publicIP, true, true},
		{"pod to kubelet", 10250, pod, true, true},
		{"operator to kubelet", 10250, operatorIP, false, false},
		{"internet to kubelet", 10250, internet, false, false},
		{"operator to etcd client", 2379, operatorIP, false, false},
		{"internet to etcd peer", 2380, internet, false, false},
		{"internet to trustd", 50001, internet, false, false},
	}

	for _, tt := range tests {
		if got := admits(initial, tt.port, tt.src); got != tt.initial {
			t.Errorf("initial: %s (%s -> %d) admitted = %v, want %v", tt.name, tt.src, tt.port, got, tt.initial)
		}

		if got := admits(lockdown, tt.port, tt.src); got != tt.locked {
			t.Errorf("lockdown: %s (%s -> %d) admitted = %v, want %v", tt.name, tt.src, tt.port, got, tt.locked)
		}
	}
}

// TestLockdownDiffersOnlyInOperatorRules compares the YAML documents: the
// lockdown config must be the initial config with the operator rule
// documents removed, nothing else.
func TestLockdownDiffersOnlyInOperatorRules(t *testing.T) {
	t.Parallel()

	res := result(t)

	initialDocs := strings.Split(strings.TrimSpace(string(res.ControlPlane)), "\n---\n")
	lockdownDocs := strings.Split(strings.TrimSpace(string(res.Lockdown)), "\n---\n")

	var kept []string
	for _, doc := range initialDocs {
		if strings.Contains(doc, "name: operator-") && strings.Contains(doc, "kind: NetworkRuleConfig") {
			continue
		}

		kept = append(kept, doc)
	}

	if len(kept) != len(initialDocs)-2 {
		t.Fatalf("initial config has %d operator rule documents, want 2", len(initialDocs)-len(kept))
	}

	if diff := cmp.Diff(kept, lockdownDocs); diff != "" {
		t.Errorf("lockdown differs from initial beyond the operator rules:\n%s", diff)
	}
}

func TestValidateVersions(t *testing.T) {
	t.Parallel()

	tests := []struct {
		talos, kubernetes string
		wantErr           string
	}{
		{"v1.12.4", "1.35.0", ""},
		{"v1.12.4", "v1.34.2", ""},
		{"v1.11.0", "1.33.1", ""},
		{"v0.1.0", "1.35.0", "older than v1.6.0"},
		{"v1.5.3", "1.28.0", "older than v1.6.0"},
		{"banana", "1.35.0", `"banana" is not of the form vX.Y.Z`},
		{"1.12.4", "1.35.0", "not of the form"},
		{"v1.13.0", "1.35.0", "newer than the machinery library"},
		{"v1.12.4", "1.20.0", "too old"},
		{"v1.12.4", "1.36.0", "too new"},
		{"v1.12.4", "banana", `kubernetes version "banana"`},
		{"v1.12.4", "", "kubernetes version is empty"},
	}

	for _, tt := range tests {
		t.Run(tt.talos+"/"+tt.kubernetes, func(t *testing.T) {
			t.Parallel()

			err := machineconfig.ValidateVersions(tt.talos, tt.kubernetes)

			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("ValidateVersions: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("ValidateVersions error = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestGenerateRejectsBadInput(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		mutate func(*machineconfig.Input)
		want   string
	}{
		{"banana talos", func(in *machineconfig.Input) { in.TalosVersion = "banana" }, "talos version"},
		{"ancient talos", func(in *machineconfig.Input) { in.TalosVersion = "v0.1.0" }, "older than"},
		{"no cluster name", func(in *machineconfig.Input) { in.ClusterName = "" }, "cluster name"},
		{"no public IP", func(in *machineconfig.Input) { in.PublicIP = netip.Addr{} }, "public IP"},
		{"no operator IP", func(in *machineconfig.Input) { in.OperatorIP = netip.Addr{} }, "operator IP"},
		{"IPv6 operator for IPv4 node", func(in *machineconfig.Input) { in.OperatorIP = netip.MustParseAddr("2001:db8::1") }, "different families"},
		{"no install disk", func(in *machineconfig.Input) { in.InstallDisk = "" }, "install disk"},
		{"bad schematic", func(in *machineconfig.Input) { in.SchematicID = "nope" }, "schematic ID"},
		{"bad proxy", func(in *machineconfig.Input) { in.TeleportProxy = "teleport" }, "teleport proxy"},
		{"no join token", func(in *machineconfig.Input) { in.TeleportJoinToken = "" }, "join token is empty"},
		{"half an infisical identity", func(in *machineconfig.Input) { in.InfisicalClientSecret = "" }, "must be given together"},
		{"no bundle", func(in *machineconfig.Input) { in.Secrets = nil }, "secrets bundle"},
		{"bad endpoint", func(in *machineconfig.Input) { in.Endpoint = "https://x:6443" }, "endpoint"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			in := validInput(t)
			tt.mutate(&in)

			_, err := machineconfig.Generate(in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Generate error = %v, want it to mention %q", err, tt.want)
			}

			assertNoSecrets(t, err.Error())
		})
	}
}

func assertNoSecrets(t *testing.T, s string) {
	t.Helper()

	for _, secret := range []string{joinToken, infisicalID, infisicalSecret} {
		if strings.Contains(s, secret) {
			t.Errorf("%q leaks a secret value", s)
		}
	}
}

func TestEndpointDefaults(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		endpoint string
		dnsName  string
		want     string
	}{
		{"explicit", "api.rawkode.example", "node.rawkode.example", "https://api.rawkode.example:6443"},
		{"DNS name", "", "node.rawkode.example", "https://node.rawkode.example:6443"},
		{"public IP without DNS", "", "", "https://203.0.113.10:6443"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			in := validInput(t)
			in.Endpoint, in.DNSName = tt.endpoint, tt.dnsName

			res, err := machineconfig.Generate(in)
			if err != nil {
				t.Fatal(err)
			}

			provider, err := configloader.NewFromBytes(res.ControlPlane)
			if err != nil {
				t.Fatal(err)
			}

			if got := provider.Cluster().Endpoint().String(); got != tt.want {
				t.Errorf("endpoint = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSecretsRoundTrip(t *testing.T) {
	t.Parallel()

	b := pinnedBundle(t)

	data, err := machineconfig.MarshalSecrets(b)
	if err != nil {
		t.Fatal(err)
	}

	again, err := machineconfig.UnmarshalSecrets(data)
	if err != nil {
		t.Fatal(err)
	}

	if diff := cmp.Diff(b, again, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Clock" }, cmp.Ignore())); diff != "" {
		t.Errorf("round trip changed the bundle:\n%s", diff)
	}

	const leaked = "SECRET-ca-key-5d1e8b"

	for _, bad := range []string{"certs: [" + leaked, "cluster:\n  id: " + leaked + "\n"} {
		_, err := machineconfig.UnmarshalSecrets([]byte(bad))
		if err == nil {
			t.Fatalf("UnmarshalSecrets accepted %q", bad)
		}

		if strings.Contains(err.Error(), leaked) {
			t.Errorf("error %q leaks input", err)
		}
	}
}

// TestNewSecrets pays the ~2 s bundle generation once and proves a fresh
// bundle (not only the pinned one) generates valid configs.
func TestNewSecrets(t *testing.T) {
	t.Parallel()

	if _, err := machineconfig.NewSecrets("banana"); err == nil {
		t.Error("NewSecrets accepted Talos version banana")
	}

	b, err := machineconfig.NewSecrets("v1.12.4")
	if err != nil {
		t.Fatal(err)
	}

	in := validInput(t)
	in.Secrets = b
	in.Clock = nil

	if _, err := machineconfig.Generate(in); err != nil {
		t.Fatal(err)
	}
}

// A cluster provisioned without Infisical gets no machine-identity manifest.
func TestGenerateWithoutInfisicalIdentity(t *testing.T) {
	t.Parallel()
	in := validInput(t)
	in.InfisicalClientID, in.InfisicalClientSecret = "", ""
	res, err := machineconfig.Generate(in)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := machineconfig.InlineManifests(res.ControlPlane)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name == machineconfig.ManifestInfisical {
			t.Fatalf("manifest %s present without an identity", m.Name)
		}
	}
	if len(ms) != 2 {
		t.Fatalf("manifests = %d, want the Teleport agent and its token", len(ms))
	}
}
