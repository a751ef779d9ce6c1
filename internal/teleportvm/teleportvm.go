// Package teleportvm renders what the Proxmox topology's Teleport VM runs:
// its teleport.yaml, the resources it starts with, and its first-boot data.
//
// The VM is internal only (10.10.0.2). The public reaches it through the
// HAProxy VM by SNI (teleport.<domain>, proxmox.<domain> → :3080) and the
// host's forwards of 3023 (SSH proxy) and 3024 (reverse tunnel, without
// which app access fails with "Unable to serve application requests").
//
// # Credentials without a long-lived secret
//
// The CLI must mint join tokens (kube agent, the host's SSH service) and
// create the GitHub connector on a Teleport it has just created. Nothing for
// that is baked in: no static token in teleport.yaml, no client secret in
// the user data.
//
//  1. The user data carries only public resources (BootstrapResources): the
//     infra-admin role, and a `rawkode-cloud-provisioner` user whose role can
//     do exactly what provisioning needs (tokens, the connector, reading
//     agents, deleting itself), with a one-hour certificate ceiling.
//  2. At first boot, as root on the auth server, `tctl create` adds them and
//     `tctl auth sign --ttl=1h` writes that user's identity to
//     /run/rawkode-cloud (tmpfs, 0600): it exists only in memory.
//  3. The CLI reads the identity through the Proxmox API's guest-agent
//     file-read (the VM runs qemu-guest-agent; the CLI still never uses SSH)
//     and deletes the file through guest-agent exec. It then creates the
//     GitHub connector over Teleport's API, so the client secret only ever
//     travels over mTLS, and mints short-lived join tokens.
//  4. At the end of the run the CLI deletes the provisioner user; its
//     certificate expires within the hour in any case.
package teleportvm

import (
	"bytes"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gravitational/teleport/api/types"
	"go.yaml.in/yaml/v4"
	kyaml "sigs.k8s.io/yaml"
)

// Names of the resources this package creates.
const (
	ConnectorName   = "github"
	InfraAdminRole  = "infra-admin"
	ProvisionerUser = "rawkode-cloud-provisioner"
	ProvisionerRole = "rawkode-cloud-provisioner"
	// IdentityPath is where first boot leaves the provisioner's identity.
	IdentityPath = "/run/rawkode-cloud/provisioner.identity"
	// BootstrapPath holds the public bootstrap resources on the VM.
	BootstrapPath = "/etc/rawkode-cloud/teleport-bootstrap.yaml"
	// IdentityTTL bounds the provisioner's certificate.
	IdentityTTL = time.Hour
	// MajorVersion is the Teleport release channel the VM installs.
	MajorVersion = 18
)

// Ports of the Teleport proxy (the document's layout).
const (
	WebPort    = 3080
	SSHPort    = 3023
	TunnelPort = 3024
	AuthPort   = 3025
)

// Config is what the Teleport VM needs.
type Config struct {
	// Domain is the topology's public domain; Teleport is teleport.<domain>.
	Domain string
	// NodeName is the VM's name in Teleport ("teleport").
	NodeName string
	// ProxmoxURL is the Proxmox UI, served as the app proxmox.<domain>.
	ProxmoxURL string
	// ACMEEmail receives Let's Encrypt notices; empty sends none.
	ACMEEmail string
	// GitHub SSO.
	GitHubOrg, GitHubTeam, GitHubClientID, GitHubClientSecret string
	// Logins are the explicit logins of infra-admin (the document's
	// "unknown user" lesson: the GitHub username exists on no machine).
	Logins []string
}

// PublicHost is the Teleport proxy's public name.
func (c Config) PublicHost() string { return "teleport." + c.Domain }

// ProxmoxHost is the public name of the Proxmox UI app.
func (c Config) ProxmoxHost() string { return "proxmox." + c.Domain }

// CallbackURL is what the GitHub OAuth app must have as its callback.
func (c Config) CallbackURL() string {
	return "https://" + c.PublicHost() + "/v1/webapi/github/callback"
}

// ErrTeamWildcard explains the document's lesson about team wildcards: the
// connector compares each of the user's team slugs with the mapping's by
// plain equality (GithubConnectorV3.MapClaims in Teleport's api module).
var ErrTeamWildcard = fmt.Errorf("Teleport matches GitHub teams by their exact slug; a wildcard (*) matches no team, " +
	"so nobody could log in. Set github-team to the team's slug (lower case, as in github.com/orgs/<org>/teams/<slug>); " +
	"membership of the organisation alone is not enough")

var reSlug = regexp.MustCompile(`^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$`)
var reLogin = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// CheckGitHubTeam validates the github-team setting.
func CheckGitHubTeam(team string) error {
	if strings.Contains(team, "*") {
		return ErrTeamWildcard
	}
	if !reSlug.MatchString(team) {
		return fmt.Errorf("%q is not a GitHub team slug (lower case letters, digits, '-' and '_'); %w", team, ErrTeamWildcard)
	}
	return nil
}

func (c Config) validate() error {
	if c.Domain == "" || c.NodeName == "" {
		return fmt.Errorf("teleport VM: domain and node name are required (set `domain`)")
	}
	if u, err := url.Parse(c.ProxmoxURL); err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("teleport VM: Proxmox UI URL %q is not an https URL", c.ProxmoxURL)
	}
	if len(c.Logins) == 0 {
		return fmt.Errorf("teleport VM: infra-admin needs explicit logins")
	}
	for _, l := range c.Logins {
		if !reLogin.MatchString(l) {
			return fmt.Errorf("teleport VM: %q is not a Unix login", l)
		}
	}
	return nil
}

// fileConfig is the subset of Teleport's v3 file configuration used here.
type fileConfig struct {
	Version  string `yaml:"version"`
	Teleport struct {
		NodeName string `yaml:"nodename"`
		DataDir  string `yaml:"data_dir"`
		Log      struct {
			Output   string `yaml:"output"`
			Severity string `yaml:"severity"`
		} `yaml:"log"`
	} `yaml:"teleport"`
	Auth struct {
		Enabled        bool   `yaml:"enabled"`
		ClusterName    string `yaml:"cluster_name"`
		ListenAddr     string `yaml:"listen_addr"`
		Authentication struct {
			Type string `yaml:"type"`
		} `yaml:"authentication"`
	} `yaml:"auth_service"`
	SSH struct {
		Enabled bool              `yaml:"enabled"`
		Labels  map[string]string `yaml:"labels"`
	} `yaml:"ssh_service"`
	Proxy struct {
		Enabled          bool   `yaml:"enabled"`
		WebListenAddr    string `yaml:"web_listen_addr"`
		PublicAddr       string `yaml:"public_addr"`
		ListenAddr       string `yaml:"listen_addr"`
		SSHPublicAddr    string `yaml:"ssh_public_addr"`
		TunnelListenAddr string `yaml:"tunnel_listen_addr"`
		TunnelPublicAddr string `yaml:"tunnel_public_addr"`
		ACME             struct {
			Enabled bool   `yaml:"enabled"`
			Email   string `yaml:"email,omitempty"`
		} `yaml:"acme"`
	} `yaml:"proxy_service"`
	App struct {
		Enabled bool      `yaml:"enabled"`
		Apps    []appSpec `yaml:"apps"`
	} `yaml:"app_service"`
}

type appSpec struct {
	Name               string            `yaml:"name"`
	URI                string            `yaml:"uri"`
	PublicAddr         string            `yaml:"public_addr"`
	InsecureSkipVerify bool              `yaml:"insecure_skip_verify"`
	Labels             map[string]string `yaml:"labels"`
}

// TeleportYAML renders /etc/teleport.yaml. It holds no secret: no static
// join tokens, and SSO is configured as a resource, not here.
func TeleportYAML(c Config) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	var f fileConfig
	f.Version = "v3"
	f.Teleport.NodeName = c.NodeName
	f.Teleport.DataDir = "/var/lib/teleport"
	f.Teleport.Log.Output, f.Teleport.Log.Severity = "stderr", "INFO"
	f.Auth.Enabled = true
	f.Auth.ClusterName = c.PublicHost()
	f.Auth.ListenAddr = fmt.Sprintf("0.0.0.0:%d", AuthPort)
	f.Auth.Authentication.Type = "github"
	f.SSH.Enabled = true
	f.SSH.Labels = map[string]string{"rawkode-cloud/role": "teleport"}
	f.Proxy.Enabled = true
	f.Proxy.WebListenAddr = fmt.Sprintf("0.0.0.0:%d", WebPort)
	f.Proxy.PublicAddr = c.PublicHost() + ":443"
	f.Proxy.ListenAddr = fmt.Sprintf("0.0.0.0:%d", SSHPort)
	f.Proxy.SSHPublicAddr = fmt.Sprintf("%s:%d", c.PublicHost(), SSHPort)
	// The reverse tunnel listener is what the app service registers
	// through; without it app access fails ("Unable to serve application
	// requests").
	f.Proxy.TunnelListenAddr = fmt.Sprintf("0.0.0.0:%d", TunnelPort)
	f.Proxy.TunnelPublicAddr = fmt.Sprintf("%s:%d", c.PublicHost(), TunnelPort)
	// ACME's TLS-ALPN challenge arrives through HAProxy with its SNI intact.
	f.Proxy.ACME.Enabled = true
	f.Proxy.ACME.Email = c.ACMEEmail
	f.App.Enabled = true
	f.App.Apps = []appSpec{{Name: ProxmoxApp, URI: c.ProxmoxURL, PublicAddr: c.ProxmoxHost(),
		// The Proxmox UI has a self-signed certificate on the internal network.
		InsecureSkipVerify: true, Labels: map[string]string{"rawkode-cloud/role": "proxmox"}}}
	var buf bytes.Buffer
	buf.WriteString("# Rendered by rawkode-cloud. No secrets: SSO and tokens are resources.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// GitHubConnector is the SSO connector: members of one team of one
// organisation get infra-admin. It carries the client secret.
func GitHubConnector(c Config) (types.GithubConnector, error) {
	if err := CheckGitHubTeam(c.GitHubTeam); err != nil {
		return nil, fmt.Errorf("github-team: %w", err)
	}
	if c.GitHubOrg == "" || c.GitHubClientID == "" || c.GitHubClientSecret == "" {
		return nil, fmt.Errorf("the GitHub connector needs github-org, github-client-id and github-client-secret")
	}
	return types.NewGithubConnector(ConnectorName, types.GithubConnectorSpecV3{
		ClientID: c.GitHubClientID, ClientSecret: c.GitHubClientSecret,
		RedirectURL: c.CallbackURL(), Display: "GitHub",
		TeamsToRoles: []types.TeamRolesMapping{{Organization: c.GitHubOrg, Team: c.GitHubTeam, Roles: []string{InfraAdminRole}}},
	})
}

// InfraAdmin is the role the GitHub team maps to: explicit logins, every
// node, app and Kubernetes cluster of this Teleport.
func InfraAdmin(c Config) (types.Role, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	all := types.Labels{types.Wildcard: []string{types.Wildcard}}
	r, err := types.NewRole(InfraAdminRole, types.RoleSpecV6{
		Options: types.RoleOptions{MaxSessionTTL: types.NewDuration(8 * time.Hour)},
		Allow: types.RoleConditions{
			Logins:     slices.Clone(c.Logins),
			NodeLabels: all, AppLabels: all, KubernetesLabels: all,
			KubeGroups: []string{"system:masters"},
		},
	})
	return r, err
}

// Provisioner is the role of the CLI's short-lived identity: what a run
// needs, nothing else, and a certificate that cannot outlive the hour.
func Provisioner() (types.Role, error) {
	self := fmt.Sprintf(`equals(resource.metadata.name, %q)`, ProvisionerUser)
	return types.NewRole(ProvisionerRole, types.RoleSpecV6{
		Options: types.RoleOptions{MaxSessionTTL: types.NewDuration(IdentityTTL)},
		Allow: types.RoleConditions{Rules: []types.Rule{
			{Resources: []string{types.KindToken}, Verbs: []string{types.VerbCreate, types.VerbRead, types.VerbList, types.VerbDelete}},
			{Resources: []string{types.KindGithub}, Verbs: []string{types.VerbCreate, types.VerbUpdate, types.VerbRead, types.VerbList}},
			{Resources: []string{types.KindRole}, Verbs: []string{types.VerbRead, types.VerbList}},
			{Resources: []string{types.KindKubeServer, types.KindNode, types.KindAppServer}, Verbs: []string{types.VerbRead, types.VerbList}},
			{Resources: []string{types.KindUser}, Verbs: []string{types.VerbRead, types.VerbDelete}, Where: self},
		}},
	})
}

// ProvisionerAccount is the user the identity is issued for.
func ProvisionerAccount() (types.User, error) {
	u, err := types.NewUser(ProvisionerUser)
	if err != nil {
		return nil, err
	}
	u.SetRoles([]string{ProvisionerRole})
	return u, nil
}

// Marshal renders resources as `tctl create` takes them: one YAML document
// each, in the order given (roles before the user and connector that name
// them).
func Marshal(resources ...types.Resource) ([]byte, error) {
	var buf bytes.Buffer
	for i, r := range resources {
		data, err := kyaml.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("marshal %s %s: %w", r.GetKind(), r.GetName(), err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(data)
	}
	return buf.Bytes(), nil
}

// BootstrapResources are the public resources first boot creates.
func BootstrapResources(c Config) ([]byte, error) {
	admin, err := InfraAdmin(c)
	if err != nil {
		return nil, err
	}
	prov, err := Provisioner()
	if err != nil {
		return nil, err
	}
	user, err := ProvisionerAccount()
	if err != nil {
		return nil, err
	}
	return Marshal(admin, prov, user)
}
