// Package config defines every rawkode-cloud setting exactly once and derives
// from that one definition the command-line flags, the environment binding,
// the config-file keys, the Infisical secret names, validation and the
// configuration reference in the README.
package config

import (
	"strings"
)

// Setting is the single definition of one setting.
type Setting struct {
	Name    string // also the flag name and the config-file key
	Section string // heading in the reference
	Help    string
	Default string
	// TopologyDefaults replace Default on the named topologies (a setting
	// given from any source still wins); the reference lists them.
	TopologyDefaults map[string]string
	// Secret values are never printed, logged or written anywhere.
	Secret bool
	// Type decides parsing for flags, the file and the environment.
	Type Type
	// Infisical is the secret name that can fill this setting; empty when
	// the setting cannot come from Infisical (e.g. Infisical's own login).
	Infisical string
	// NoFile settings cannot be set from the config file (the file's own path).
	NoFile bool
	// Check validates a non-empty value; the message says what is wrong
	// without repeating a secret value. Without it, a setting with Values
	// accepts exactly those.
	Check func(string) error
	// Commands are the commands that use the setting, as paths below the
	// root ("provision", "config show"); an entry covers its subcommands too
	// ("platform" covers "platform check"). Only these commands offer its
	// flag. Nil means every command that takes settings. 'config show'
	// shows every setting whatever this says.
	Commands []string
	// Values is the fixed set of values the setting accepts, if it has one:
	// shell completion offers them and, without a Check, validation
	// accepts only them. Bool settings have true and false implicitly.
	Values []string
	// CommandHelp replaces Help for the flag of the named commands, where
	// the setting means something more particular ('config show --output'
	// formats a table, not progress).
	CommandHelp map[string]string
}

// Type is a setting's value type.
type Type int

const (
	String Type = iota
	Bool
	Duration
)

func (t Type) String() string {
	switch t {
	case Bool:
		return "bool"
	case Duration:
		return "duration"
	}
	return "string"
}

// Flag is the command-line flag, with dashes.
func (s Setting) Flag() string { return "--" + s.Name }

// Env is the environment variable: RAWKODE_CLOUD_<NAME_IN_UPPER_SNAKE>.
func (s Setting) Env() string { return EnvPrefix + upperSnake(s.Name) }

// FileKey is the key in the YAML config file (the flag name).
func (s Setting) FileKey() string {
	if s.NoFile {
		return ""
	}
	return s.Name
}

// EnvPrefix starts every environment variable rawkode-cloud reads.
const EnvPrefix = "RAWKODE_CLOUD_"

func upperSnake(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Ways lists every way to set s, for error messages.
func (s Setting) Ways() string {
	ways := []string{"flag " + s.Flag(), "env " + s.Env()}
	if k := s.FileKey(); k != "" {
		ways = append(ways, "file key "+k)
	}
	if s.Infisical != "" {
		ways = append(ways, "Infisical secret "+s.Infisical)
	}
	return strings.Join(ways, ", ")
}

// Names of settings the code refers to. Keep in sync with Schema (a test checks).
const (
	ClusterName   = "cluster-name"
	Domain        = "domain"
	ControlPlanes = "control-planes"
	Workers       = "workers"
	Topology      = "topology"

	ScalewayAccessKey     = "scaleway-access-key"
	ScalewaySecretKey     = "scaleway-secret-key"
	ScalewayProjectID     = "scaleway-project-id"
	ScalewayZone          = "scaleway-zone"
	ScalewayOfferID       = "scaleway-offer-id"
	ScalewayWorkerOfferID = "scaleway-worker-offer-id"
	ScalewayOSID          = "scaleway-os-id"

	TalosVersion      = "talos-version"
	KubernetesVersion = "kubernetes-version"
	TalosSchematicID  = "talos-schematic-id"
	TalosInstallDisk  = "talos-install-disk"
	ImageFactoryURL   = "image-factory-url"
	// TalosConfigDelivery is how a node gets its machine config.
	TalosConfigDelivery = "talos-config-delivery"

	TeleportProxy        = "teleport-proxy"
	TeleportIdentityFile = "teleport-identity-file"
	TeleportIdentity     = "teleport-identity"
	TeleportTokenTTL     = "teleport-token-ttl"
	TeleportAgentVersion = "teleport-agent-version"

	// GitHub SSO of the proxmox topology's own Teleport.
	GitHubOrg          = "github-org"
	GitHubTeam         = "github-team"
	GitHubClientID     = "github-client-id"
	GitHubClientSecret = "github-client-secret"

	CloudflareAPIToken = "cloudflare-api-token"
	CloudflareZoneID   = "cloudflare-zone-id"
	CloudflareDNSName  = "cloudflare-dns-name"

	InfisicalURL          = "infisical-url"
	InfisicalClientID     = "infisical-client-id"
	InfisicalClientSecret = "infisical-client-secret"
	InfisicalProjectID    = "infisical-project-id"
	InfisicalEnvironment  = "infisical-environment"
	InfisicalSecretPath   = "infisical-secret-path"
	InfisicalProjectSlug  = "infisical-project-slug"

	OperatorIP = "operator-ip"

	ServerTimeout             = "server-timeout"
	ServerPollInterval        = "server-poll-interval"
	TalosMaintenanceTimeout   = "talos-maintenance-timeout"
	TalosMaintenanceInterval  = "talos-maintenance-poll-interval"
	TalosMTLSTimeout          = "talos-mtls-timeout"
	TalosMTLSInterval         = "talos-mtls-poll-interval"
	ServicesTimeout           = "services-timeout"
	ServicesInterval          = "services-poll-interval"
	ProxmoxHostTimeout        = "proxmox-host-timeout"
	ProxmoxHostInterval       = "proxmox-host-poll-interval"
	TeleportAgentTimeout      = "teleport-agent-timeout"
	TeleportAgentPollInterval = "teleport-agent-poll-interval"
	UndoTimeout               = "undo-timeout"

	Output        = "output"
	ConfigFile    = "config"
	KeepOnFailure = "keep-on-failure"
	SecretsOut    = "secrets-out"

	CNI               = "cni"
	LoadBalancerPool  = "load-balancer-pool"
	FluxGitURL        = "flux-git-url"
	FluxGitBranch     = "flux-git-branch"
	FluxGitPath       = "flux-git-path"
	FluxGitKnownHosts = "flux-git-known-hosts"
	FluxDeployKey     = "flux-deploy-key"
	KubernetesTimeout = "kubernetes-timeout"
	KubernetesPoll    = "kubernetes-poll-interval"

	ACMEEmail           = "acme-email"
	BackupBucket        = "backup-bucket"
	BackupEndpoint      = "backup-endpoint"
	PlatformSecretStore = "platform-secret-store"
)

// CNIs the cni setting accepts.
const (
	CNIFlannel = "flannel"
	CNICilium  = "cilium"
)

// Topologies.
const (
	TopologyMetal   = "metal"
	TopologyProxmox = "proxmox"
)

// Secret stores the platform scaffold can point the External Secrets
// Operator at.
const (
	SecretStoreOnePassword = "onepassword"
	// Values of TalosConfigDelivery.
	DeliveryMaintenance  = "maintenance"
	DeliveryInstall      = "install"
	SecretStoreInfisical = "infisical"
)

// SandboxURL points the commands at a served sandbox.
const SandboxURL = "sandbox-url"

// Where etcd snapshots go.
const (
	EtcdBackupBucket   = "etcd-backup-bucket"
	EtcdBackupEndpoint = "etcd-backup-endpoint"
	EtcdBackupRegion   = "etcd-backup-region"
)

// DefaultSchematicID is the Image Factory schematic of a vanilla Talos image
// (no system extensions).
const DefaultSchematicID = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"

// Schema is every setting, in reference order.
var Schema = []Setting{
	{Name: ClusterName, Section: "Cluster", Help: "Name of the cluster; also its servers' names and hostnames (<name>, or <name>-cp-N and <name>-worker-N with more than one node), their tags and the Teleport kube cluster name", Infisical: "CLUSTER_NAME", Check: checkDNSLabel},
	{Name: Topology, Section: "Cluster", Help: "How the cluster's machines come to exist: metal (each node an Elastic Metal server) or proxmox (one Elastic Metal server turned into a Proxmox VE host for VMs)", Default: TopologyMetal, Values: []string{TopologyMetal, TopologyProxmox}, Commands: forProvision},
	{Name: ControlPlanes, Section: "Cluster", Help: "Number of control-plane nodes: 1, 3 or 5 (etcd needs an odd number to keep a quorum; 3 survive the loss of one, 5 of two)", Default: "1", Infisical: "CONTROL_PLANES", Check: checkControlPlanes, Commands: forProvision},
	{Name: Workers, Section: "Cluster", Help: "Number of worker nodes (0 or more); with none, workloads run on the control planes", Default: "0", Infisical: "WORKERS", Check: checkWorkers, Commands: forProvision},
	{Name: Domain, Section: "Cluster", Help: "Public DNS domain of the cluster; the names it serves are made under it (e.g. *.apps.<domain>)", Infisical: "DOMAIN", Check: checkDNSName, Commands: forDomain},

	{Name: ScalewayAccessKey, Section: "Scaleway", Help: "Scaleway API access key (SCW followed by 17 characters)", Secret: true, Infisical: "SCALEWAY_ACCESS_KEY", Check: checkScalewayAccessKey},
	{Name: ScalewaySecretKey, Section: "Scaleway", Help: "Scaleway API secret key", Secret: true, Infisical: "SCALEWAY_SECRET_KEY", Check: checkUUID},
	{Name: ScalewayProjectID, Section: "Scaleway", Help: "Scaleway project that owns the server and the SSH keys", Infisical: "SCALEWAY_PROJECT_ID", Check: checkUUID},
	{Name: ScalewayZone, Section: "Scaleway", Help: "Scaleway zone to order the Elastic Metal server in", Default: "fr-par-2", Infisical: "SCALEWAY_ZONE", Check: checkZone, Values: ElasticMetalZones()},
	{Name: ScalewayOfferID, Section: "Scaleway", Help: "Elastic Metal offer to order (must support cloud-init)", Infisical: "SCALEWAY_OFFER_ID", Check: checkUUID, Commands: forProvision},
	{Name: ScalewayWorkerOfferID, Section: "Scaleway", Help: "Elastic Metal offer for worker nodes (must support cloud-init); empty means scaleway-offer-id", Infisical: "SCALEWAY_WORKER_OFFER_ID", Check: checkUUID, Commands: forProvision},
	{Name: ScalewayOSID, Section: "Scaleway", Help: "OS to install before the pivot to Talos (must support cloud-init, e.g. Ubuntu)", Infisical: "SCALEWAY_OS_ID", Check: checkUUID, Commands: forProvision},

	{Name: TalosVersion, Section: "Talos", Help: "Talos Linux version to install", Default: "v1.12.4", Infisical: "TALOS_VERSION", Check: checkTalosVersion, Commands: forProvision},
	{Name: KubernetesVersion, Section: "Talos", Help: "Kubernetes version to run", Default: "1.35.1", Infisical: "KUBERNETES_VERSION", Check: checkKubernetesVersion, Commands: forProvision},
	{Name: TalosSchematicID, Section: "Talos", Help: "Image Factory schematic (64 hex characters); the default is vanilla Talos", Default: DefaultSchematicID, Infisical: "TALOS_SCHEMATIC_ID", Check: checkSchematic, Commands: forProvision},
	{Name: TalosInstallDisk, Section: "Talos", Help: "Disk the Talos image is written to and installed on", Default: "/dev/nvme0n1", Infisical: "TALOS_INSTALL_DISK", Check: checkDisk, Commands: forProvision},
	{Name: ImageFactoryURL, Section: "Talos", Help: "Talos Image Factory base URL", Default: "https://factory.talos.dev", Infisical: "IMAGE_FACTORY_URL", Check: checkHTTPURL, Commands: forProvision},
	{Name: TalosConfigDelivery, Section: "Talos", Help: "How a node gets its machine config: maintenance (applied over the unauthenticated maintenance API after the pivot, which anyone reaching the node first could do) or install (carried by the install on a metal-iso volume, so the node never waits in maintenance mode)", Default: DeliveryMaintenance, Infisical: "TALOS_CONFIG_DELIVERY", Check: checkDelivery, Commands: forProvision, Values: []string{DeliveryMaintenance, DeliveryInstall}},

	{Name: TeleportProxy, Section: "Teleport", Help: "Teleport proxy address (host:port) the metal topology's cluster registers with (provision requires it there); provisioning the proxmox topology does not use it: its cluster registers with the Teleport VM the run creates", Infisical: "TELEPORT_PROXY", Check: checkHostPort},
	{Name: TeleportIdentityFile, Section: "Teleport", Help: "Teleport identity file (from tctl auth sign) for teleport-proxy; without it and without teleport-identity the tsh profile is used (provisioning the proxmox topology does not use it)", Infisical: "", Check: checkReadableFile},
	{Name: TeleportIdentity, Section: "Teleport", Help: "Teleport identity file content for teleport-proxy, for when it lives in the secret store rather than on disk (provisioning the proxmox topology does not use it)", Secret: true, Infisical: "TELEPORT_IDENTITY", Check: checkIdentityContent},
	{Name: TeleportTokenTTL, Section: "Teleport", Help: "Lifetime of the join token minted for the cluster's kube agent", Default: "30m", Type: Duration, Infisical: "TELEPORT_TOKEN_TTL", Check: checkPositiveDuration, Commands: forProvision},

	{Name: TeleportAgentVersion, Section: "Teleport", Help: "Version of the Teleport kube agent image run in the cluster; empty means the Teleport cluster's own version, read when phase 0 checks the connection", Infisical: "TELEPORT_AGENT_VERSION", Check: checkImageTag, Commands: forProvision},

	{Name: GitHubOrg, Section: "Teleport", Help: "Proxmox topology: GitHub organisation whose team may log in to the topology's own Teleport (GitHub SSO)", Infisical: "GITHUB_ORG", Check: checkGitHubOrg, Commands: forProvision},
	{Name: GitHubTeam, Section: "Teleport", Help: "Proxmox topology: slug of the GitHub team mapped to the infra-admin role (exact: Teleport compares slugs, a wildcard matches nobody)", Infisical: "GITHUB_TEAM", Check: checkToken, Commands: forProvision},
	{Name: GitHubClientID, Section: "Teleport", Help: "Proxmox topology: client ID of the GitHub OAuth app (callback https://teleport.<domain>/v1/webapi/github/callback)", Infisical: "GITHUB_CLIENT_ID", Check: checkToken, Commands: forProvision},
	{Name: GitHubClientSecret, Section: "Teleport", Help: "Proxmox topology: client secret of the GitHub OAuth app; sent only to Teleport's API, never in a VM's user data", Secret: true, Infisical: "GITHUB_CLIENT_SECRET", Check: checkToken, Commands: forProvision},

	{Name: CloudflareAPIToken, Section: "Cloudflare", Help: "Cloudflare API token with DNS edit rights on the zone", Secret: true, Infisical: "CLOUDFLARE_API_TOKEN", Check: checkToken},
	{Name: CloudflareZoneID, Section: "Cloudflare", Help: "Cloudflare zone ID (32 hex characters)", Infisical: "CLOUDFLARE_ZONE_ID", Check: checkCloudflareZone},
	{Name: CloudflareDNSName, Section: "Cloudflare", Help: "DNS name of the A record pointed at the server; also the Kubernetes API endpoint", Infisical: "CLOUDFLARE_DNS_NAME", Check: checkDNSName},

	{Name: InfisicalURL, Section: "Infisical", Help: "Infisical site URL", Check: checkHTTPURL},
	{Name: InfisicalClientID, Section: "Infisical", Help: "Infisical machine identity client ID (Universal Auth)", Check: checkToken},
	{Name: InfisicalClientSecret, Section: "Infisical", Help: "Infisical machine identity client secret (Universal Auth)", Secret: true, Check: checkToken},
	{Name: InfisicalProjectID, Section: "Infisical", Help: "Infisical project holding the settings and receiving the cluster's secrets", Check: checkToken},
	{Name: InfisicalEnvironment, Section: "Infisical", Help: "Infisical environment slug", Default: "prod", Check: checkSlug},
	{Name: InfisicalSecretPath, Section: "Infisical", Help: "Infisical folder the settings are read from", Default: "/", Check: checkSecretPath},
	{Name: InfisicalProjectSlug, Section: "Infisical", Help: "Slug of the Infisical project (the External Secrets Operator addresses projects by slug); needed by platform scaffold with platform-secret-store infisical", Check: checkSlug, Commands: []string{CmdPlatform}},

	{Name: OperatorIP, Section: "Network", Help: "Public IPv4 of this machine, allowed through the temporary firewall and break-glass openings (detected when empty)", Infisical: "", Check: checkOperatorIP, Commands: append([]string{CmdAccess}, forProvision...)},

	{Name: ServerTimeout, Section: "Waits", Help: "How long to wait for the server to be delivered and its OS installed", Default: "45m", Type: Duration, Check: checkPositiveDuration, Commands: forServers},
	{Name: ServerPollInterval, Section: "Waits", Help: "How often to ask Scaleway about the server", Default: "30s", Type: Duration, Check: checkPositiveDuration, Commands: forServers},
	{Name: TalosMaintenanceTimeout, Section: "Waits", Help: "How long to wait for Talos maintenance mode after the install", Default: "20m", Type: Duration, Check: checkPositiveDuration, Commands: forProvision},
	{Name: TalosMaintenanceInterval, Section: "Waits", Help: "How often to probe the node for maintenance mode once its install completed (a TLS dial to the node, no API cost: the node is noticed at most this long after it answers)", Default: "250ms", Type: Duration, Check: checkPositiveDuration, Commands: forProvision},
	{Name: TalosMTLSTimeout, Section: "Waits", Help: "How long to wait for the node to answer over mTLS after applying its config", Default: "10m", Type: Duration, Check: checkPositiveDuration, Commands: forProvision},
	{Name: TalosMTLSInterval, Section: "Waits", Help: "How often to probe the node over mTLS while it reboots into its configuration", Default: "1s", Type: Duration, Check: checkPositiveDuration, Commands: forProvision},
	{Name: ServicesTimeout, Section: "Waits", Help: "How long to wait for etcd, kubelet, apid and trustd to be healthy (upgrade: for each node to come back upgraded and the cluster healthy)", Default: "10m", Type: Duration, Check: checkPositiveDuration, Commands: forUpgrade},
	{Name: ServicesInterval, Section: "Waits", Help: "How often to list the node's services when its event stream is unavailable (upgrade: how often to check a node and the cluster)", Default: "5s", Type: Duration, Check: checkPositiveDuration, Commands: forUpgrade},
	{Name: ProxmoxHostTimeout, Section: "Waits", Help: "Proxmox topology: how long the host's first boot (Debian into Proxmox VE: kernel, reboot, packages) may take after the OS install", Default: "30m", Type: Duration, Check: checkPositiveDuration, Commands: forProvision},
	{Name: ProxmoxHostInterval, Section: "Waits", Help: "Proxmox topology: how often to try the host's API login during its first boot", Default: "10s", Type: Duration, Check: checkPositiveDuration, Commands: forProvision},
	{Name: TeleportAgentTimeout, Section: "Waits", Help: "How long to wait for the cluster's kube agent (on the proxmox topology also the host's SSH node and the Proxmox UI app) to register with Teleport", Default: "10m", Type: Duration, Check: checkPositiveDuration, Commands: forProvision},
	{Name: TeleportAgentPollInterval, Section: "Waits", Help: "How often to ask Teleport for the kube agent when it cannot watch", Default: "5s", Type: Duration, Check: checkPositiveDuration, Commands: forProvision},
	{Name: KubernetesTimeout, Section: "Waits", Help: "How long to wait, before lockdown, for every node to be Ready, the CNI and CoreDNS to run and the FluxInstance to be Ready", Default: "15m", Type: Duration, Check: checkPositiveDuration, Commands: forProvision},
	{Name: KubernetesPoll, Section: "Waits", Help: "How often to ask the Kubernetes API about them", Default: "5s", Type: Duration, Check: checkPositiveDuration, Commands: forProvision},
	{Name: UndoTimeout, Section: "Waits", Help: "Upper bound for each cleanup step (removing one thing a failed run created)", Default: "15m", Type: Duration, Check: checkPositiveDuration, Commands: []string{CmdProvision}},

	{Name: Output, Section: "Output", Help: "Progress output: auto (a live display on a terminal, plain otherwise), plain or json", Default: "auto", Values: []string{"auto", "plain", "json"},
		CommandHelp: map[string]string{CmdConfigShow: "Output format: auto or plain (a table), or json (one object, setting → value and source)"}},
	{Name: ConfigFile, Section: "Output", Help: "Config file (YAML; keys are the setting names). Default ~/.rawkode-cloud.yaml when it exists", NoFile: true, Check: checkReadableFile},
	{Name: KeepOnFailure, Section: "Output", Help: "On failure, keep everything that was created (and list it) instead of removing it", Default: "false", Type: Bool, Commands: []string{CmdProvision}},
	{Name: SecretsOut, Section: "Output", Help: "Directory to write talosconfig, kubeconfig and the secrets bundle to (0600) when Infisical is not configured", Check: checkDirPath, Commands: forProvision},

	{Name: CNI, Section: "Kubernetes", Help: "Pod network: flannel (Talos's default, with kube-proxy) or cilium (Cilium 1.19 from its official chart, replacing kube-proxy, with Gateway API and L2 load balancing). The proxmox topology defaults to cilium: the HAProxy VM sends *.apps.<domain> to its gateway VIP", Default: CNIFlannel, TopologyDefaults: map[string]string{TopologyProxmox: CNICilium}, Infisical: "CNI", Check: checkCNI, Commands: forProvision, Values: []string{CNIFlannel, CNICilium}},
	{Name: LoadBalancerPool, Section: "Kubernetes", Help: "Addresses Cilium hands to LoadBalancer services (the gateway) and announces on the local network: IPs or CIDRs, comma-separated; empty means the gateway VIP (Proxmox) or the server's public IP (Elastic Metal). Needs cni cilium", Infisical: "LOAD_BALANCER_POOL", Check: checkPool, Commands: forProvision},
	{Name: FluxGitURL, Section: "Kubernetes", Help: "Platform repository the Flux Operator syncs, ssh://git@host/org/repo.git (with a deploy key) or https://host/org/repo.git; empty: no Flux", Infisical: "FLUX_GIT_URL", Check: checkGitURL, Commands: forProvision},
	{Name: FluxGitBranch, Section: "Kubernetes", Help: "Branch of the platform repository Flux syncs", Default: "main", Infisical: "FLUX_GIT_BRANCH", Check: checkGitBranch, Commands: forProvision},
	{Name: FluxGitPath, Section: "Kubernetes", Help: "Directory of the platform repository Flux syncs; empty means clusters/<cluster-name>", Infisical: "FLUX_GIT_PATH", Check: checkRelativePath, Commands: forProvision},
	{Name: FluxGitKnownHosts, Section: "Kubernetes", Help: "SSH known_hosts lines of the repository's host; empty means GitHub's published keys (only for github.com)", Infisical: "FLUX_GIT_KNOWN_HOSTS", Check: checkKnownHosts, Commands: forProvision},
	{Name: FluxDeployKey, Section: "Kubernetes", Help: "Unencrypted SSH private key Flux reads the repository with; when unset, one is generated (ed25519), stored with the cluster's secrets and its public half printed to add as a read-only deploy key", Secret: true, Infisical: "FLUX_DEPLOY_KEY", Check: checkDeployKey, Commands: forProvision},

	{Name: ACMEEmail, Section: "Platform", Help: "Contact address registered with Let's Encrypt for the platform's certificates", Infisical: "ACME_EMAIL", Check: checkEmail, Commands: []string{CmdPlatform}},
	{Name: BackupBucket, Section: "Platform", Help: "S3-compatible bucket receiving the platform's PostgreSQL WAL archive and base backups", Infisical: "BACKUP_BUCKET", Check: checkBucket, Commands: []string{CmdPlatform}},
	{Name: BackupEndpoint, Section: "Platform", Help: "S3-compatible endpoint of the backup bucket", Default: "https://s3.fr-par.scw.cloud", Infisical: "BACKUP_ENDPOINT", Check: checkHTTPURL, Commands: []string{CmdPlatform}},
	{Name: PlatformSecretStore, Section: "Platform", Help: "Where the platform's External Secrets Operator reads secrets: onepassword (through 1Password Connect) or infisical", Default: SecretStoreOnePassword, Infisical: "PLATFORM_SECRET_STORE", Check: checkSecretStore, Commands: []string{CmdPlatform}, Values: []string{SecretStoreOnePassword, SecretStoreInfisical}},

	{Name: EtcdBackupBucket, Section: "Backups", Help: "S3-compatible bucket for etcd snapshots (etcd snapshot, restore and rebuild); signed with the Scaleway access and secret keys", Infisical: "ETCD_BACKUP_BUCKET", Check: checkBucket, Commands: forBackups},
	{Name: EtcdBackupEndpoint, Section: "Backups", Help: "S3-compatible endpoint of the etcd snapshot bucket (Scaleway Object Storage by default)", Default: "https://s3.fr-par.scw.cloud", Infisical: "ETCD_BACKUP_ENDPOINT", Check: checkHTTPURL, Commands: forBackups},
	{Name: EtcdBackupRegion, Section: "Backups", Help: "Region of the etcd snapshot bucket", Default: "fr-par", Infisical: "ETCD_BACKUP_REGION", Check: checkSlug, Commands: forBackups},

	{Name: SandboxURL, Section: "Sandbox", Help: "Address of a running 'rawkode-cloud sandbox serve' (the config file it writes sets it): the commands work on that sandbox's emulators, on its clock", Check: checkLoopbackURL},
}

// Groups are settings that must be set all together or not at all.
var Groups = []struct {
	Name     string
	Settings []string
}{
	{"Cloudflare DNS", []string{CloudflareAPIToken, CloudflareZoneID, CloudflareDNSName}},
	{"Infisical", []string{InfisicalURL, InfisicalClientID, InfisicalClientSecret, InfisicalProjectID}},
}

// Lookup returns the setting called name.
func Lookup(name string) (Setting, bool) {
	for _, s := range Schema {
		if s.Name == name {
			return s, true
		}
	}
	return Setting{}, false
}

func mustLookup(name string) Setting {
	s, ok := Lookup(name)
	if !ok {
		panic("config: unknown setting " + name)
	}
	return s
}
