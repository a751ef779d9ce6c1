package platform

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strings"

	"sigs.k8s.io/yaml"
)

// The Flux Operator is AGPL-3.0. rawkode-cloud neither links nor embeds any of
// it, its manifests included: Talos downloads the operator's own release
// manifest (CRDs, RBAC, Deployment) from this URL when it bootstraps the
// cluster (cluster.extraManifests) and applies it like the inline manifests.
const (
	FluxOperatorVersion    = "v0.40.0"
	FluxOperatorInstallURL = "https://github.com/controlplaneio-fluxcd/flux-operator/releases/download/" +
		FluxOperatorVersion + "/install.yaml"
	// FluxDistribution is the Flux version range the operator installs.
	FluxDistribution = "2.7.x"
	FluxRegistry     = "ghcr.io/fluxcd"
)

// Names in the cluster. The operator reconciles only a FluxInstance named
// "flux"; the pull secret follows `flux bootstrap`'s convention, so a cluster
// can later be bootstrapped by hand without a clash.
const (
	FluxNamespace          = "flux-system"
	FluxInstanceName       = "flux"
	FluxInstanceKind       = "FluxInstance"
	FluxInstanceAPIVersion = "fluxcd.controlplane.io/v1"
	FluxSecretName         = "flux-system"
	FluxOperatorDeployment = "flux-operator"
)

// FluxComponents are the controllers the FluxInstance runs.
func FluxComponents() []string {
	return []string{"source-controller", "kustomize-controller", "helm-controller", "notification-controller"}
}

// GitHubKnownHosts are GitHub's published SSH host keys
// (https://docs.github.com/en/authentication/keeping-your-account-and-data-secure/githubs-ssh-key-fingerprints),
// used when the repository is on github.com and no known hosts are given.
const GitHubKnownHosts = "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n" +
	"github.com ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg=\n"

// FluxInput configures the FluxInstance.
type FluxInput struct {
	// URL is the platform repository: ssh://git@host/org/repo.git (with a
	// deploy key) or https://host/org/repo.git (public).
	URL string
	// Branch defaults to main.
	Branch string
	// Path defaults to clusters/<cluster>.
	Path string
	// DeployKey is required for ssh:// URLs.
	DeployKey *DeployKey
	// KnownHosts defaults to GitHubKnownHosts for github.com; other SSH
	// hosts must give theirs.
	KnownHosts string
}

// IsSSH says whether the repository is reached over SSH (and needs a key).
func (f FluxInput) IsSSH() bool { return strings.HasPrefix(f.URL, "ssh://") }

func (f FluxInput) validate() error {
	u, err := url.Parse(f.URL)
	if err != nil || u.Host == "" || (u.Scheme != "ssh" && u.Scheme != "https") || u.Path == "" || u.Path == "/" {
		return fmt.Errorf("flux git URL %q is not ssh://user@host/path or https://host/path", redactURL(f.URL))
	}

	var errs []error

	if u.Scheme == "https" && u.User != nil {
		errs = append(errs, errors.New("flux git URL must not carry credentials: use an ssh:// URL with a deploy key"))
	}

	if u.Scheme == "ssh" {
		if f.DeployKey == nil {
			errs = append(errs, errors.New("flux git URL is ssh:// but there is no deploy key"))
		}

		if f.KnownHosts == "" && u.Hostname() != "github.com" {
			errs = append(errs, fmt.Errorf("flux git host %s is not github.com: its SSH known hosts must be given", u.Hostname()))
		}
	}

	if b := f.branch(); strings.ContainsAny(b, " ~^:?*[\\") || strings.Contains(b, "..") || strings.HasPrefix(b, "-") {
		errs = append(errs, fmt.Errorf("flux git branch %q is not a valid branch name", b))
	}

	if p := f.Path; p != "" && (path.IsAbs(p) || strings.HasPrefix(path.Clean(p), "..")) {
		errs = append(errs, fmt.Errorf("flux git path %q must be relative to the repository root", p))
	}

	return errors.Join(errs...)
}

// redactURL drops any password from a URL before it goes into an error.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable>"
	}

	return u.Redacted()
}

func (f FluxInput) branch() string {
	if f.Branch == "" {
		return "main"
	}

	return f.Branch
}

// SyncPath is the repository path the FluxInstance syncs.
func (f FluxInput) SyncPath(cluster string) string {
	if f.Path == "" {
		return "clusters/" + cluster
	}

	return path.Clean(f.Path)
}

func (f FluxInput) knownHosts() string {
	if f.KnownHosts != "" {
		return f.KnownHosts
	}

	return GitHubKnownHosts
}

// SSHHost is host[:port] of an ssh:// URL, for known_hosts checks.
func (f FluxInput) SSHHost() string {
	u, err := url.Parse(f.URL)
	if err != nil {
		return ""
	}

	if u.Port() != "" {
		return net.JoinHostPort(u.Hostname(), u.Port())
	}

	return u.Hostname()
}

type namespaceObject struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
}

type secretObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   objectMeta        `json:"metadata"`
	Type       string            `json:"type"`
	StringData map[string]string `json:"stringData"`
}

type fluxInstance struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		Distribution struct {
			Version  string `json:"version"`
			Registry string `json:"registry"`
		} `json:"distribution"`
		Components []string `json:"components"`
		Cluster    struct {
			Type          string `json:"type"`
			Multitenant   bool   `json:"multitenant"`
			NetworkPolicy bool   `json:"networkPolicy"`
			Domain        string `json:"domain"`
		} `json:"cluster"`
		Sync struct {
			Kind       string `json:"kind"`
			URL        string `json:"url"`
			Ref        string `json:"ref"`
			Path       string `json:"path"`
			PullSecret string `json:"pullSecret,omitempty"`
		} `json:"sync"`
	} `json:"spec"`
}

// fluxManifests renders the flux-system namespace with the deploy key Secret
// (the namespace is also in the operator's manifest, but Talos may apply the
// inline manifests before it has downloaded that one, and a Secret in a
// missing namespace would stop the whole apply) and the FluxInstance, which
// waits for its CRD like the Cilium pool does.
func fluxManifests(cluster string, f FluxInput) (secretStream, instanceStream string, err error) {
	ns := namespaceObject{APIVersion: "v1", Kind: "Namespace", Metadata: objectMeta{Name: FluxNamespace}}
	objects := []any{ns}

	if f.IsSSH() {
		objects = append(objects, secretObject{
			APIVersion: "v1", Kind: "Secret",
			Metadata: objectMeta{Name: FluxSecretName, Namespace: FluxNamespace},
			Type:     "Opaque",
			StringData: map[string]string{
				"identity":     string(f.DeployKey.Private),
				"identity.pub": f.DeployKey.Public + "\n",
				"known_hosts":  f.knownHosts(),
			},
		})
	}

	if secretStream, err = yamlDocs(objects...); err != nil {
		return "", "", err
	}

	fi := fluxInstance{APIVersion: FluxInstanceAPIVersion, Kind: FluxInstanceKind,
		Metadata: objectMeta{Name: FluxInstanceName, Namespace: FluxNamespace}}
	fi.Spec.Distribution.Version = FluxDistribution
	fi.Spec.Distribution.Registry = FluxRegistry
	fi.Spec.Components = FluxComponents()
	fi.Spec.Cluster.Type = "kubernetes"
	fi.Spec.Cluster.NetworkPolicy = true
	fi.Spec.Cluster.Domain = "cluster.local"
	fi.Spec.Sync.Kind = "GitRepository"
	fi.Spec.Sync.URL = f.URL
	fi.Spec.Sync.Ref = "refs/heads/" + f.branch()
	fi.Spec.Sync.Path = f.SyncPath(cluster)

	if f.IsSSH() {
		fi.Spec.Sync.PullSecret = FluxSecretName
	}

	b, err := yaml.Marshal(fi)
	if err != nil {
		return "", "", fmt.Errorf("render FluxInstance: %w", err)
	}

	return secretStream, string(b), nil
}
