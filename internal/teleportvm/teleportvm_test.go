package teleportvm_test

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gravitational/teleport/api/types"
	"go.yaml.in/yaml/v4"
	kyaml "sigs.k8s.io/yaml"

	"github.com/rawkode/rawkode-cloud/internal/cloudinit"
	"github.com/rawkode/rawkode-cloud/internal/golden"
	"github.com/rawkode/rawkode-cloud/internal/teleportvm"
)

func config() teleportvm.Config {
	return teleportvm.Config{
		Domain: "example.com", NodeName: "teleport", ProxmoxURL: "https://10.10.0.1:8006", ACMEEmail: "ops@example.com",
		GitHubOrg: "example-org", GitHubTeam: "platform-admins", GitHubClientID: "Iv1.0123456789abcdef",
		GitHubClientSecret: "sandbox-github-client-secret-000000000000", Logins: []string{"root", "deploy"},
	}
}

// split returns the YAML documents of a tctl create file.
func split(t *testing.T, data []byte) [][]byte {
	t.Helper()
	var docs [][]byte
	for _, d := range bytes.Split(data, []byte("---\n")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

// decode reads a rendered document back into the Teleport API type, as tctl
// does (YAML → JSON → the resource), and runs the library's own checks.
func decode[T interface{ CheckAndSetDefaults() error }](t *testing.T, doc []byte, into T) T {
	t.Helper()
	js, err := kyaml.YAMLToJSON(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := kyaml.Unmarshal(js, into); err != nil {
		t.Fatalf("%s does not decode as %T: %v", doc, into, err)
	}
	if err := into.CheckAndSetDefaults(); err != nil {
		t.Fatalf("Teleport's CheckAndSetDefaults refuses %T: %v", into, err)
	}
	return into
}

func TestResourcesPassTeleportChecks(t *testing.T) {
	t.Parallel()
	c := config()
	conn, err := teleportvm.GitHubConnector(c)
	if err != nil {
		t.Fatal(err)
	}
	data, err := teleportvm.Marshal(conn)
	if err != nil {
		t.Fatal(err)
	}
	gc := decode(t, data, &types.GithubConnectorV3{})
	if gc.GetRedirectURL() != "https://teleport.example.com/v1/webapi/github/callback" {
		t.Errorf("callback %s", gc.GetRedirectURL())
	}
	m := gc.GetTeamsToRoles()
	if len(m) != 1 || m[0].Organization != "example-org" || m[0].Team != "platform-admins" || m[0].Roles[0] != "infra-admin" {
		t.Errorf("teams_to_roles %+v", m)
	}
	// A member of the team gets infra-admin, anyone else nothing: the
	// library's own claim mapping, which compares team slugs exactly.
	roles, _, _ := gc.MapClaims(types.GithubClaims{OrganizationToTeams: map[string][]string{"example-org": {"platform-admins"}}})
	if len(roles) != 1 || roles[0] != "infra-admin" {
		t.Errorf("a team member maps to %v", roles)
	}
	if roles, _, _ := gc.MapClaims(types.GithubClaims{OrganizationToTeams: map[string][]string{"example-org": {"everyone"}}}); len(roles) != 0 {
		t.Errorf("a non-member maps to %v", roles)
	}

	boot, err := teleportvm.BootstrapResources(c)
	if err != nil {
		t.Fatal(err)
	}
	golden.Compare(t, "testdata/bootstrap.yaml", boot)
	docs := split(t, boot)
	if len(docs) != 3 {
		t.Fatalf("%d bootstrap documents, want 3", len(docs))
	}
	admin := decode(t, docs[0], &types.RoleV6{})
	if got := admin.GetLogins(types.Allow); strings.Join(got, ",") != "root,deploy" {
		t.Errorf("infra-admin logins %v: they must be explicit, never {{internal.logins}}", got)
	}
	prov := decode(t, docs[1], &types.RoleV6{})
	if prov.GetOptions().MaxSessionTTL.Duration() != teleportvm.IdentityTTL {
		t.Errorf("provisioner certificates may live %v", prov.GetOptions().MaxSessionTTL)
	}
	if len(prov.GetLogins(types.Allow)) != 0 || len(prov.GetNodeLabels(types.Allow)) != 0 {
		t.Error("the provisioner can log in somewhere")
	}
	user := decode(t, docs[2], &types.UserV2{})
	if strings.Join(user.GetRoles(), ",") != teleportvm.ProvisionerRole {
		t.Errorf("provisioner user roles %v", user.GetRoles())
	}
	if bytes.Contains(boot, []byte(c.GitHubClientSecret)) {
		t.Error("the bootstrap resources (user data) carry the GitHub client secret")
	}
}

func TestTeamWildcardIsRefused(t *testing.T) {
	t.Parallel()
	for _, team := range []string{"*", "platform-*", "Platform Admins"} {
		c := config()
		c.GitHubTeam = team
		_, err := teleportvm.GitHubConnector(c)
		if !errors.Is(err, teleportvm.ErrTeamWildcard) || !strings.Contains(err.Error(), "exact slug") {
			t.Errorf("team %q: %v", team, err)
		}
	}
}

func TestTeleportYAML(t *testing.T) {
	t.Parallel()
	data, err := teleportvm.TeleportYAML(config())
	if err != nil {
		t.Fatal(err)
	}
	golden.Compare(t, "testdata/teleport.yaml", data)
	var f map[string]any
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	proxy, _ := f["proxy_service"].(map[string]any)
	for key, want := range map[string]any{
		"web_listen_addr": "0.0.0.0:3080", "listen_addr": "0.0.0.0:3023", "tunnel_listen_addr": "0.0.0.0:3024",
		"public_addr": "teleport.example.com:443",
	} {
		if proxy[key] != want {
			t.Errorf("proxy_service.%s = %v, want %v", key, proxy[key], want)
		}
	}
	for _, secret := range []string{"sandbox-github-client-secret", "tokens:", "auth_token"} {
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("teleport.yaml mentions %q", secret)
		}
	}
}

func TestVMUserData(t *testing.T) {
	t.Parallel()
	vm, err := teleportvm.VM(config(), cloudinit.VM{Hostname: "teleport", AdminUser: "deploy",
		Network: cloudinit.Interface{MAC: "02:00:0a:0a:00:02", Address: netip.MustParsePrefix("10.10.0.2/24"),
			Gateway: netip.MustParseAddr("10.10.0.1"), Nameservers: []netip.Addr{netip.MustParseAddr("1.1.1.1")}}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := cloudinit.UserData(vm)
	if err != nil {
		t.Fatal(err)
	}
	golden.Compare(t, "testdata/teleport-user-data.yaml", data)
	if bytes.Contains(data, []byte(config().GitHubClientSecret)) {
		t.Error("the Teleport VM's user data carries the GitHub client secret")
	}
	bin, err := exec.LookPath("cloud-init")
	if err != nil {
		t.Skip("cloud-init is not installed (CI installs it: apt-get install -y cloud-init)")
	}
	file := filepath.Join(t.TempDir(), "user-data")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "schema", "-c", file).CombinedOutput(); err != nil {
		t.Fatalf("cloud-init schema rejected the Teleport VM's user data: %v\n%s", err, out)
	}
}
