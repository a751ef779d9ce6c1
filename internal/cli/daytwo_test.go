package cli_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/rawkode/rawkode-cloud/internal/cli"
	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/provision"
	"github.com/rawkode/rawkode-cloud/internal/sandbox"
)

// served is a sandbox served in-process, with the config file its clients use.
type served struct {
	sb     *sandbox.Sandbox
	config string
}

func serveInProcess(t *testing.T, faults map[string]emulator.Fault) *served {
	t.Helper()
	sb, err := sandbox.Start(sandbox.Options{Speed: 400, Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := sb.Serve(ln)
	t.Cleanup(srv.Close)
	b, err := yaml.Marshal(sb.ConfigValues(srv.URL()))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sandbox.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return &served{sb: sb, config: path}
}

func (s *served) run(t *testing.T, want int, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	env := cli.Env{In: strings.NewReader(""), Out: &out, Err: &errOut, Home: t.TempDir(),
		LookupEnv: func(string) (string, bool) { return "", false }}
	if code := cli.Execute(context.Background(), append(args, "--config", s.config), env); code != want {
		t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out.String(), errOut.String())
	}
	return out.String()
}

func (s *served) secret(name, cluster string) string {
	v, _ := s.sb.Infisical.Value(sandbox.InfisicalProjectID, "prod", provision.SecretsPath(cluster), name)
	return v
}

// A rebuilt cluster is the same cluster: the same secrets bundle (identity,
// certificates), the same Teleport name, and etcd holding what the snapshot
// held, not a fresh keyspace.
func TestRebuildKeepsIdentityAndRestoresEtcd(t *testing.T) {
	t.Parallel()
	s := serveInProcess(t, map[string]emulator.Fault{"teleport.agent": {Kind: emulator.Never}})
	s.run(t, 3, "provision", "--cluster-name", "same", "--output", "json")
	bundle := s.secret(provision.SecretTalosBundle, "same")
	nodes := s.sb.Nodes()
	if len(nodes) != 1 || bundle == "" {
		t.Fatalf("%d nodes, bundle stored: %t", len(nodes), bundle != "")
	}
	before := nodes[0].EtcdData()
	s.run(t, 0, "etcd", "snapshot", "--cluster-name", "same")
	s.sb.Faults().Clear()
	s.run(t, 0, "destroy", "--cluster-name", "same", "--yes", "--output", "json")

	s.run(t, 0, "rebuild", "--cluster-name", "same", "--output", "json")
	if got := s.secret(provision.SecretTalosBundle, "same"); got != bundle {
		t.Error("the rebuild stored a different secrets bundle: the cluster lost its identity")
	}
	nodes = s.sb.Nodes()
	if len(nodes) != 1 {
		t.Fatalf("%d nodes after rebuild", len(nodes))
	}
	if after := nodes[0].EtcdData(); !bytes.Equal(after, before) || len(after) == 0 {
		t.Errorf("etcd after rebuild %q, want the snapshot's %q", after, before)
	}
	if ks := s.sb.Teleport.KubeServers(); len(ks) != 1 || ks[0] != "same" {
		t.Errorf("Teleport kube servers after rebuild: %v", ks)
	}
}

// A failed rebuild must not take the stored credentials with it: they are
// the only way back.
func TestFailedRebuildKeepsTheSecrets(t *testing.T) {
	t.Parallel()
	s := serveInProcess(t, map[string]emulator.Fault{"teleport.agent": {Kind: emulator.Never}})
	s.run(t, 3, "provision", "--cluster-name", "keep", "--output", "json")
	bundle := s.secret(provision.SecretTalosBundle, "keep")
	s.run(t, 0, "destroy", "--cluster-name", "keep", "--yes", "--output", "json")
	s.sb.Faults().Clear()
	s.sb.Faults().Set("talos.bootstrap", emulator.Fault{Kind: emulator.Error})
	s.run(t, 1, "rebuild", "--cluster-name", "keep", "--output", "json")
	if got := s.secret(provision.SecretTalosBundle, "keep"); got != bundle {
		t.Fatal("the failed rebuild's cleanup removed the stored secrets bundle")
	}
	if len(s.sb.Scaleway.Servers()) != 0 {
		t.Error("the failed rebuild left a server")
	}
}

// "Teleport was misconfigured; fixed it; now verify and lock down": a run
// that ended in exit 3 is completed by provision --resume, on the same
// server, with the same secrets, without ordering anything again.
func TestResumeCompletesARunLeftAtExit3(t *testing.T) {
	t.Parallel()
	s := serveInProcess(t, map[string]emulator.Fault{"teleport.agent": {Kind: emulator.Never}})
	s.run(t, 3, "provision", "--cluster-name", "later", "--output", "json")
	servers := s.sb.Scaleway.Servers()
	bundle := s.secret(provision.SecretTalosBundle, "later")
	if len(servers) != 1 {
		t.Fatalf("%d servers after exit 3", len(servers))
	}
	s.run(t, 2, "provision", "--cluster-name", "later", "--output", "json") // not without --resume
	s.sb.Faults().Clear()                                                   // Teleport is fixed

	out := s.run(t, 0, "provision", "--resume", "--cluster-name", "later", "--output", "json")
	if !strings.Contains(out, "not ordered again") {
		t.Errorf("resume output:\n%s", out)
	}
	after := s.sb.Scaleway.Servers()
	if len(after) != 1 || after[0].ID != servers[0].ID {
		t.Fatalf("servers after resume %v, want only %s", after, servers[0].ID)
	}
	if s.secret(provision.SecretTalosBundle, "later") != bundle {
		t.Error("resume replaced the secrets bundle")
	}
	if n := s.sb.Node(after[0].IPv4); n == nil || n.BootstrapCount() != 1 {
		t.Error("etcd was bootstrapped again")
	}
	status := s.run(t, 0, "status", "--cluster-name", "later", "--output", "json")
	if !strings.Contains(status, `"state":"ok"`) || !strings.Contains(status, "closed from here") {
		t.Errorf("status after resume:\n%s", status)
	}
	if len(s.sb.Teleport.Tokens()) != 0 {
		t.Errorf("join tokens left: %v", s.sb.Teleport.Tokens())
	}
	// Nothing to resume once it is gone.
	s.run(t, 0, "destroy", "--cluster-name", "later", "--yes", "--delete-secrets", "--output", "json")
	s.run(t, 2, "provision", "--resume", "--cluster-name", "later", "--output", "json")
}
