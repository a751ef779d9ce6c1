package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"

	"github.com/rawkode/rawkode-cloud/internal/cidata"
	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/democraticcsi"
	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/imagefactory"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/pivot"
	"github.com/rawkode/rawkode-cloud/internal/platform"
	"github.com/rawkode/rawkode-cloud/internal/provision"
	"github.com/rawkode/rawkode-cloud/internal/proxmoxvms"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
	"github.com/rawkode/rawkode-cloud/internal/secretfile"
	chartpkg "github.com/rawkode/rawkode-cloud/third_party/democratic-csi"
)

type planOptions struct {
	render string
}

func (o *planOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.render, "render", "", "Also write the artifacts the node would receive to this directory (files holding secrets are 0600)")
}

// Placeholders for what only a real run knows, from the documentation
// address ranges (RFC 5737) so they can never be mistaken for real ones.
const (
	placeholderServerIP   = "192.0.2.10"
	placeholderOperatorIP = "198.51.100.10"
	placeholderToken      = "placeholder-join-token-minted-at-provision-time"
	placeholderProxy      = "teleport.example.com:443"
)

// planStep is one phase of the plan.
type planStep struct {
	Phase   string   `json:"phase"`
	Actions []string `json:"actions"`
}

type planDoc struct {
	Cluster  string     `json:"cluster"`
	Steps    []planStep `json:"steps"`
	Firewall []string   `json:"firewall"`
	// FirewallNode names the node Firewall is of, when there are several.
	FirewallNode string            `json:"firewall_node,omitempty"`
	Waits        map[string]string `json:"waits"`
	Placeholders map[string]string `json:"placeholders"`
	Rendered     []renderedFile    `json:"rendered,omitempty"`
	// UserDataSecret: the user data carries the machine config.
	UserDataSecret bool `json:"user_data_secret,omitempty"`
	// ProvisionNeeds is what a real provision would still ask for, from
	// the same checks its phase 0 makes (Infisical aside, which plan does
	// not contact).
	ProvisionNeeds []string `json:"provision_needs"`
	infisical      bool
}

type renderedFile struct {
	Path   string `json:"path"`
	Mode   string `json:"mode"`
	Secret bool   `json:"secret"`
}

func (a *app) runPlan(cmd *cobra.Command, o *planOptions) error {
	cfg, err := a.loadConfig(cmd)
	if err != nil {
		return err
	}
	req := config.Requirements{Required: []string{config.ClusterName}, Extra: func(c *config.Config) config.Problems {
		if !c.WellFormed(config.TalosVersion, config.KubernetesVersion) {
			return nil // reported as malformed already
		}
		if err := machineconfig.ValidateVersions(c.Get(config.TalosVersion), c.Get(config.KubernetesVersion)); err != nil {
			return config.Problems{c.ProblemFor(config.TalosVersion, "cannot be generated for: "+err.Error())}
		}
		return nil
	}}
	if cfg.Get(config.Topology) == config.TopologyProxmox {
		req.Required = append(req.Required, config.Domain)
	}
	if err := cfg.Validate(req); err != nil {
		return fail.UsageError(err)
	}
	if cfg.Get(config.Topology) == config.TopologyProxmox {
		return a.runProxmoxPlan(cfg, o)
	}
	doc, rend, err := buildPlan(cfg, nil)
	if err != nil {
		return err
	}
	doc.ProvisionNeeds = provisionNeeds(cfg)
	doc.infisical = provision.InfisicalConfigured(cfg)
	if o.render != "" {
		files, err := renderArtifacts(o.render, rend)
		if err != nil {
			return err
		}
		doc.Rendered = files
	}
	out := a.redactor.Writer(a.env.Out)
	if cfg.Get(config.Output) == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	printPlan(out, doc)
	return nil
}

// plannedNode is one node of the plan with the placeholder address it is
// rendered for and what it would receive.
type plannedNode struct {
	provision.PlannedNode
	ip                         netip.Addr
	config, lockdown, userData []byte
}

// rendering is what plan --render writes.
type rendering struct {
	nodes       []*plannedNode
	talosconfig []byte
	// userData is the one user data every node gets, unless it carries each
	// node's config (install delivery: plannedNode.userData).
	userData       []byte
	userDataSecret bool
}

// planNodes are the cluster's nodes, as provision names them, each with a
// documentation address: 192.0.2.10 for the first, counting up.
func planNodes(cfg *config.Config) []*plannedNode {
	first := netip.MustParseAddr(placeholderServerIP)
	var out []*plannedNode
	for i, n := range provision.PlannedNodes(cfg.Get(config.ClusterName), cfg.Int(config.ControlPlanes), cfg.Int(config.Workers)) {
		ip := first
		for range i {
			ip = ip.Next()
		}
		out = append(out, &plannedNode{PlannedNode: n, ip: ip})
	}
	return out
}

// buildPlan describes the run and renders every node's artifacts; bundle
// is the Talos secrets bundle to render from (nil: a fresh one).
func buildPlan(cfg *config.Config, bundle *secrets.Bundle) (*planDoc, *rendering, error) {
	name := cfg.Get(config.ClusterName)
	proxy := cfg.Get(config.TeleportProxy)
	placeholders := map[string]string{
		"server IP":           placeholderServerIP,
		"operator IP":         placeholderOperatorIP,
		"Teleport join token": placeholderToken,
	}
	if proxy == "" {
		proxy = placeholderProxy
		placeholders["Teleport proxy"] = placeholderProxy
	}
	if v := cfg.Get(config.OperatorIP); v != "" {
		delete(placeholders, "operator IP")
	}
	opIP := placeholderOperatorIP
	if v := cfg.Get(config.OperatorIP); v != "" {
		opIP = v
	}
	pivotOpts := pivot.Options{
		SchematicID: cfg.Get(config.TalosSchematicID), TalosVersion: cfg.Get(config.TalosVersion),
		ImageFactoryURL: cfg.Get(config.ImageFactoryURL), InstallDisk: cfg.Get(config.TalosInstallDisk),
	}
	userData, err := pivot.Render(pivotOpts)
	if err != nil {
		return nil, nil, fmt.Errorf("render cloud-init user data: %w", err)
	}
	// The platform layer as provision would render it; an SSH repository
	// without a configured key gets a throwaway one (provision generates and
	// stores the real one).
	var deployKey *platform.DeployKey
	if strings.HasPrefix(cfg.Get(config.FluxGitURL), "ssh://") {
		if raw := cfg.Get(config.FluxDeployKey); raw != "" {
			deployKey, err = platform.ParseDeployKey([]byte(raw))
		} else {
			deployKey, err = platform.GenerateDeployKey("flux@" + name + " (plan placeholder)")
			placeholders["Flux deploy key"] = "generated for this plan only"
		}
		if err != nil {
			return nil, nil, fmt.Errorf("flux deploy key: %w", err)
		}
	}
	nodes := planNodes(cfg)
	var cpIPs, allIPs []netip.Addr
	var ipTexts []string
	for _, n := range nodes {
		allIPs = append(allIPs, n.ip)
		ipTexts = append(ipTexts, n.ip.String())
		if n.Role == provision.ControlPlane {
			cpIPs = append(cpIPs, n.ip)
		}
	}
	if len(nodes) > 1 {
		delete(placeholders, "server IP")
		placeholders["node IPs"] = strings.Join(ipTexts, ", ")
	}
	pin, err := provision.PlatformInput(cfg, ipTexts, deployKey)
	if err != nil {
		return nil, nil, err
	}
	layer, err := provision.RenderPlatformLayer(context.Background(), pin)
	if err != nil {
		return nil, nil, fmt.Errorf("render the platform layer: %w", err)
	}
	endpoint := cpIPs[0].String()
	if cfg.IsSet(config.CloudflareDNSName) {
		endpoint = cfg.Get(config.CloudflareDNSName)
	}
	if bundle == nil {
		if bundle, err = machineconfig.NewSecrets(cfg.Get(config.TalosVersion)); err != nil {
			return nil, nil, fmt.Errorf("generate Talos secrets: %w", err)
		}
	}
	// Every node's configs from the one bundle, as provision's phase 4
	// renders them (nodeconfig.go).
	install := cfg.Get(config.TalosConfigDelivery) == config.DeliveryInstall
	var talosconfig []byte // the same for every node
	for _, n := range nodes {
		res, err := machineconfig.Generate(machineconfig.Input{
			ClusterName: name, Endpoint: endpoint, PublicIP: n.ip,
			DNSName: cfg.Get(config.CloudflareDNSName), KubernetesVersion: cfg.Get(config.KubernetesVersion),
			TalosVersion: cfg.Get(config.TalosVersion), SchematicID: cfg.Get(config.TalosSchematicID),
			InstallDisk: cfg.Get(config.TalosInstallDisk), OperatorIP: netip.MustParseAddr(opIP),
			TeleportProxy: proxy, TeleportJoinToken: placeholderToken, TeleportAgentVersion: cfg.Get(config.TeleportAgentVersion),
			InfisicalClientID: cfg.Get(config.InfisicalClientID), InfisicalClientSecret: cfg.Get(config.InfisicalClientSecret),
			Secrets: bundle, Platform: layer,
			Worker: n.Role == provision.Worker, Hostname: n.Name, ControlPlaneIPs: cpIPs, NodeIPs: allIPs,
			HasWorkers: len(cpIPs) < len(nodes),
		})
		if err != nil {
			return nil, nil, fmt.Errorf("generate Talos machine config of %s: %w", n.Name, err)
		}
		n.config, n.lockdown, talosconfig = res.ControlPlane, res.Lockdown, res.Talosconfig
		n.userData = userData
		if install {
			if n.userData, err = installUserData(cfg, pivotOpts, n.config, placeholders); err != nil {
				return nil, nil, err
			}
		}
	}
	if install {
		userData = nodes[0].userData
	}
	fw, err := machineconfig.FirewallRules(nodes[0].config)
	if err != nil {
		return nil, nil, err
	}
	var openings []string
	for _, r := range fw.Rules {
		s := r.String()
		if r.Operator() {
			s += " (temporary: removed at lockdown)"
		}
		openings = append(openings, s)
	}
	openings = append([]string{"default ingress action: " + fw.DefaultAction}, openings...)

	storedIn := "Infisical " + provision.SecretsPath(name)
	if !provision.InfisicalConfigured(cfg) {
		storedIn = "files in --secrets-out " + cfg.Get(config.SecretsOut)
		if !cfg.IsSet(config.SecretsOut) {
			storedIn = "nowhere yet: provision needs Infisical or --secrets-out"
		}
	}
	dnsStep := []string{"skipped: Cloudflare is not configured"}
	if cfg.IsSet(config.CloudflareDNSName) {
		dnsStep = []string{fmt.Sprintf("upsert A record %s → <server IP> in zone %s (undo restores the previous record)", cfg.Get(config.CloudflareDNSName), cfg.Get(config.CloudflareZoneID))}
	}
	ttl := cfg.Get(config.TeleportTokenTTL)
	hostname := name
	if len(nodes) > 1 {
		hostname = "<node name>"
	}
	var manifests []string
	if ms, err := machineconfig.InlineManifests(nodes[0].config); err == nil {
		for _, m := range ms {
			manifests = append(manifests, m.Name)
		}
	}
	doc := &planDoc{
		Cluster: name,
		Steps: []planStep{
			{"0 Resolve secrets", []string{"fill unset settings from Infisical (when configured)", "validate every setting",
				"side by side: check the offer and OS support cloud-init, list the project's SSH keys, check no server of the cluster exists yet, check Teleport is reachable with the given identity, check the Cloudflare zone, detect the operator's public IPv4 (or use operator-ip)",
				"start generating the Talos PKI in the background"}},
			{"1 Order server", []string{fmt.Sprintf("order Elastic Metal offer %s in %s with OS %s, hostname %s, tags %s, cloud-init pivot to Talos %s (%d bytes of user data)",
				orUnset(cfg.Get(config.ScalewayOfferID)), cfg.Get(config.ScalewayZone), orUnset(cfg.Get(config.ScalewayOSID)), hostname, strings.Join(scaleway.ClusterTags(name), ","), cfg.Get(config.TalosVersion), len(userData))}},
			{"2 Wait for install and Talos", []string{"wait for the public IPv4 (start the DNS upsert as soon as it is known)", "wait until the server is delivered and its OS install completed, probing Talos on :50000 alongside",
				"when the install completes, prepare phase 4 in the background while the pivot writes Talos", "wait until Talos answers in maintenance mode"}},
			{"3 Update DNS", dnsStep},
			{"4 Generate config", []string{fmt.Sprintf("mint a Teleport join token: role Kube, TTL %s", ttl), "generate the machine config in memory with inline manifests: " + strings.Join(manifests, ", "), "store the secrets bundle and talosconfig: " + storedIn}},
			{"5 Bootstrap cluster", []string{"apply the config over the maintenance API", "wait for the reboot and mTLS", "bootstrap etcd once", "wait until etcd, kubelet, apid, trustd are healthy", "store the kubeconfig: " + storedIn}},
			{"6 Verify and lock down", []string{"wait until Teleport lists kube cluster " + name, "delete the used join token", "re-apply the config without the operator rules", "verify TCP 50000 and 6443 no longer answer from here"}},
		},
		Firewall: openings,
		Waits: map[string]string{
			"server delivery and OS install": waitText(cfg, config.ServerTimeout, config.ServerPollInterval),
			"Talos maintenance mode":         waitText(cfg, config.TalosMaintenanceTimeout, config.TalosMaintenanceInterval),
			"Talos mTLS after reboot":        waitText(cfg, config.TalosMTLSTimeout, config.TalosMTLSInterval),
			"services healthy":               waitText(cfg, config.ServicesTimeout, config.ServicesInterval),
			"Teleport kube agent":            waitText(cfg, config.TeleportAgentTimeout, config.TeleportAgentPollInterval),
		},
		Placeholders: placeholders,
	}
	if install {
		doc.UserDataSecret = true
		doc.Steps[0].Actions = append(doc.Steps[0].Actions, "create the Image Factory schematic: the configured one plus the kernel argument "+provision.KernelArgMetalISO)
		doc.Steps[1].Actions = []string{fmt.Sprintf("order Elastic Metal offer %s in %s without an OS (hostname %s, tags %s): its IP is known before anything is installed",
			orUnset(cfg.Get(config.ScalewayOfferID)), cfg.Get(config.ScalewayZone), hostname, strings.Join(scaleway.ClusterTags(name), ","))}
		doc.Steps[2].Actions = []string{"wait for the public IPv4; render the node's config at once (phase 4's work, the join token included)",
			fmt.Sprintf("set the server's user data: the pivot to Talos %s plus a metal-iso volume holding the machine config (%d bytes; secret)", cfg.Get(config.TalosVersion), len(userData)),
			fmt.Sprintf("install OS %s once the server is delivered; the pivot writes Talos and the config volume", orUnset(cfg.Get(config.ScalewayOSID))),
			"wait until Talos answers over mTLS: the node boots configured and never serves maintenance mode"}
		doc.Steps[5].Actions = append([]string{"no apply: the node booted with its config"}, doc.Steps[5].Actions[2:]...)
		doc.Steps[5].Actions = append(doc.Steps[5].Actions, "overwrite the server's user data and wipe the config volume (partition "+pivot.ConfigPartition(cfg.Get(config.TalosInstallDisk))+", dropped)")
	}
	if len(nodes) > 1 {
		describeNodes(doc, cfg, nodes)
	}
	return doc, &rendering{nodes: nodes, talosconfig: talosconfig, userData: userData, userDataSecret: doc.UserDataSecret}, nil
}

// describeNodes says what a cluster of several nodes adds to each phase.
func describeNodes(doc *planDoc, cfg *config.Config, nodes []*plannedNode) {
	var names, cps []string
	for _, n := range nodes {
		names = append(names, fmt.Sprintf("%s (%s, %s)", n.Name, n.Role, n.ip))
		if n.Role == provision.ControlPlane {
			cps = append(cps, n.Name)
		}
	}
	first := func(phase int, actions ...string) {
		doc.Steps[phase].Actions = append(actions, doc.Steps[phase].Actions...)
	}
	doc.FirewallNode = nodes[0].Name
	first(1, fmt.Sprintf("order all %d servers at once, each tagged role=<role> and node=<name> besides the cluster's tags: %s", len(nodes), strings.Join(names, ", ")))
	first(2, "every server side by side; one list of the cluster's servers (by tag) per poll, not one request per server")
	if cfg.IsSet(config.CloudflareDNSName) {
		doc.Steps[3].Actions = []string{fmt.Sprintf("make %s hold exactly one A record per control plane (%s) in zone %s; undo puts the zone back exactly",
			cfg.Get(config.CloudflareDNSName), strings.Join(cps, ", "), cfg.Get(config.CloudflareZoneID))}
	}
	first(4, "one secrets bundle for every node: control-plane and worker configs, each with its hostname; certSANs cover the endpoint and every control-plane IP; the talosconfig lists every control plane")
	first(5, "every node side by side; etcd is bootstrapped once, on "+cps[0]+", the other control planes join; workers wait for kubelet and apid only")
	first(6, "every control plane lists every control plane as an etcd member; every node is registered and Ready in Kubernetes; lockdown on every node, verified closed on every node")
}

// installUserData is the user data that carries the config with the install.
// Offline, the schematic with the kernel argument is known only when the
// configured one is vanilla Talos; otherwise the configured ID stands in.
func installUserData(cfg *config.Config, opts pivot.Options, machineConfig []byte, placeholders map[string]string) ([]byte, error) {
	vol, err := cidata.Build(cidata.LabelMetalISO, time.Time{}, cidata.File{Name: "config.yaml", Data: machineConfig})
	if err != nil {
		return nil, fmt.Errorf("build the config volume: %w", err)
	}
	opts.ConfigVolume = vol
	if opts.SchematicID == config.DefaultSchematicID {
		if opts.SchematicID, err = imagefactory.MetalISOSchematic().ID(); err != nil {
			return nil, err
		}
	} else {
		placeholders["install schematic"] = opts.SchematicID + " (provision creates the schematic with " + provision.KernelArgMetalISO + " added)"
	}
	ud, err := pivot.Render(opts)
	if err != nil {
		return nil, fmt.Errorf("render cloud-init user data: %w", err)
	}
	return ud, nil
}

// provisionNeeds lists what provision's phase 0 would reject, so that a
// plan tells the whole story in one round.
func provisionNeeds(cfg *config.Config) []string {
	needs := []string{}
	var probs config.Problems
	if errors.As(cfg.Validate(provision.Requirements(cfg)), &probs) {
		for _, p := range probs {
			needs = append(needs, p.String())
		}
	}
	return needs
}

// runProxmoxPlan plans the proxmox topology's host and renders its user
// data as DIR/proxmox-host-user-data.yaml (with a placeholder password
// hash: plan mints no credentials).
func (a *app) runProxmoxPlan(cfg *config.Config, o *planOptions) error {
	// A plan needs no credentials: unset GitHub SSO settings render as
	// placeholders (listed), as the operator IP does; provision requires them.
	placeholders := map[string]string{"operator IP": placeholderOperatorIP, "root password hash": "$2b$10$xxx… (generated at provision time)"}
	// What provision would ask for is judged before the placeholders go in.
	needs := provisionNeeds(cfg)
	cfg = cfg.Clone()
	for name, v := range map[string]string{config.GitHubOrg: "example-org", config.GitHubTeam: "platform-admins",
		config.GitHubClientID: "placeholder-client-id", config.GitHubClientSecret: "placeholder-client-secret"} {
		if !cfg.IsSet(name) {
			cfg.Set(name, v, config.FromDefault, "plan placeholder")
			placeholders[name] = v + " (unset: provision requires it)"
		}
	}
	// The storage driver's SSH key, made for this render only (provision
	// makes the cluster's own): its public half is in the host's user data,
	// its private half in democratic-csi.yaml and the Talos configs.
	storageKey, err := provision.NewStorageKey(cfg.Get(config.ClusterName) + " (plan placeholder)")
	if err != nil {
		return err
	}
	a.redactor.Add(string(storageKey.PrivateKey))
	placeholders["democratic-csi SSH key"] = "made for this plan only (provision makes the cluster's own and keeps it as " + provision.SecretStorageSSHKey + ")"
	userData, err := provision.HostUserData(cfg, storageKey)
	if err != nil {
		return err
	}
	name := cfg.Get(config.ClusterName)
	doc := &planDoc{
		Cluster: name,
		Steps: []planStep{
			{"0 Resolve secrets", []string{"fill unset settings from Infisical (when configured)", "validate every setting (domain is required)",
				"side by side: check the offer and OS support cloud-init, list the project's SSH keys, check no server of the cluster exists yet, detect the operator's public IPv4 (or use operator-ip); teleport-proxy is not used: the cluster joins the Teleport VM"}},
			{"1 Order server", []string{fmt.Sprintf("generate root's password (only its hash goes into the user data), the API certificate and the storage driver's SSH key pair (its public half authorized for root from 10.10.0.0/24 only, without forwarding or a terminal) and the name of the host's Teleport SSH service join token (its config in the user data); order Elastic Metal offer %s in %s with OS %s (Debian 12), hostname %s.%s, tags %s,topology=proxmox (%d bytes of user data)",
				orUnset(cfg.Get(config.ScalewayOfferID)), cfg.Get(config.ScalewayZone), orUnset(cfg.Get(config.ScalewayOSID)), name, cfg.Get(config.Domain), strings.Join(scaleway.ClusterTags(name), ","), len(userData))}},
			{"2 Prepare Proxmox VE host", []string{"wait until the server is delivered and Debian installed",
				"wait until Proxmox VE (installed by the first boot) accepts root's login on :8006, pinning the certificate",
				fmt.Sprintf("create user %s with %s on / (network and firewall need Sys.Modify) and API token %s!%s; keep the token (%s)", provision.ProxmoxUser, provision.ProxmoxRole, provision.ProxmoxUser, provision.ProxmoxTokenID, provision.SecretProxmoxToken),
				"create vmbr1 10.10.0.1/24, apply the network and check the bridge is up",
				"add the operator's temporary rule (TCP 8006) and the vmbr1 rule, then enable the firewall with input policy DROP, and check the API still answers",
				"check local's content types",
				fmt.Sprintf("rotate root's password to a new one kept as break-glass (%s)", provision.SecretProxmoxRoot),
				"check the Image Factory can build the nocloud image (qemu-guest-agent, iscsi-tools) for " + cfg.Get(config.TalosVersion) + "; the host downloads it and Debian 12's cloud image (download-url)",
				"create and start haproxy (100) and teleport (101), each from its image and its own cidata ISO",
				"read the Teleport VM's one-hour provisioner identity through the guest agent and shred it there; create the GitHub connector (org " + cfg.Get(config.GitHubOrg) + ", team " + cfg.Get(config.GitHubTeam) + ") and the host's SSH node join token (role Node)",
				"mint the kube agent's join token on the Teleport VM (the agent joins " + provision.KubeAgentProxy(cfg) + "), generate the Talos PKI and each Talos VM's configs (the VM's network, VIP 10.10.0.20 and hostname added; the control planes' inline manifests carry democratic-csi " + chartpkg.ChartVersion + " zfs-generic-iscsi against 10.10.0.1 with the default StorageClass " + democraticcsi.StorageClass + "); keep the secrets bundle, talosconfig and the storage key (" + provision.SecretStorageSSHKey + ")",
				"create and start " + name + "-cp-1…3 (110-112), each from the Talos image and its own cidata ISO",
				"wait until each Talos VM answers over mTLS through the host's operator-only forwards (50000+i, 6443+i)"}},
			{"3 Update DNS", []string{"skipped: the Kubernetes API endpoint is the VIP 10.10.0.20 on the internal network"}},
			{"4 Generate config", []string{"done in phase 2: the configs travel on the VMs' cidata ISOs"}},
			{"5 Bootstrap cluster", []string{"bootstrap etcd once on " + name + "-cp-1", "wait until etcd, kubelet, apid, trustd are healthy on every node", "eject and delete the Talos VMs' cidata ISOs", "store the kubeconfig"}},
			{"6 Verify and lock down", []string{"wait until the Teleport VM lists kube cluster " + name + ", lists the host as an SSH node and serves the Proxmox UI as app proxmox, every control plane is an etcd member and every node Ready", "re-apply each Talos VM's config without the operator rules and verify its TCP 50000 and 6443 no longer answer through the forwards",
				"delete the used join tokens (kube agent's and host's) on the Teleport VM, then its provisioner user", "remove the operator's temporary rule on the host", "verify TCP 8006 no longer answers from here"}},
		},
		Firewall: []string{"datacenter input policy: DROP", "node: accept everything in on vmbr1",
			"datacenter: accept TCP 8006 from <operator IP>/32 (temporary: removed at lockdown)",
			"host NAT: 10.10.0.0/24 masqueraded out of vmbr0; TCP 80, 443 forwarded to 10.10.0.3 (HAProxy VM), 3023, 3024 to 10.10.0.2 (Teleport VM)"},
		Waits: map[string]string{
			"server delivery and OS install": waitText(cfg, config.ServerTimeout, config.ServerPollInterval),
			"Proxmox VE first boot":          waitText(cfg, config.ProxmoxHostTimeout, config.ProxmoxHostInterval),
		},
		Placeholders:   placeholders,
		ProvisionNeeds: needs,
	}
	if o.render != "" {
		if err := os.MkdirAll(o.render, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", o.render, err)
		}
		path := filepath.Join(o.render, "proxmox-host-user-data.yaml")
		if err := secretfile.Write(path, userData, 0o644); err != nil {
			return err
		}
		doc.Rendered = []renderedFile{{Path: path, Mode: "0644"}}
		vmFiles, err := proxmoxVMFiles(cfg, storageKey)
		if err != nil {
			return err
		}
		for _, f := range vmFiles {
			mode := os.FileMode(0o644)
			if f.Secret {
				mode = 0o600
			}
			path := filepath.Join(o.render, f.Name)
			if err := secretfile.Write(path, f.Data, mode); err != nil {
				return err
			}
			doc.Rendered = append(doc.Rendered, renderedFile{Path: path, Mode: fmt.Sprintf("%04o", mode), Secret: f.Secret})
		}
	}
	out := a.redactor.Writer(a.env.Out)
	if cfg.Get(config.Output) == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	printPlan(out, doc)
	return nil
}

func orUnset(s string) string {
	if s == "" {
		return "<unset>"
	}
	return s
}

func waitText(cfg *config.Config, timeout, interval string) string {
	return fmt.Sprintf("timeout %s, checked every %s", cfg.Get(timeout), cfg.Get(interval))
}

// renderArtifacts writes what the nodes would receive. A single node's
// configs keep their historical names (controlplane.yaml); with several,
// each node's are named after it: DIR/<node>.yaml, DIR/<node>-lockdown.yaml
// (and DIR/<node>-user-data.yaml when the user data carries the config).
func renderArtifacts(dir string, rend *rendering) ([]renderedFile, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	type file struct {
		name   string
		data   []byte
		secret bool
	}
	var files []file
	single := len(rend.nodes) == 1
	if single || !rend.userDataSecret {
		files = append(files, file{"user-data.yaml", rend.userData, rend.userDataSecret}) // secret when it carries the config
	}
	for _, n := range rend.nodes {
		base := n.Name
		if single {
			base = "controlplane"
		}
		files = append(files, file{base + ".yaml", n.config, true}, file{base + "-lockdown.yaml", n.lockdown, true})
		if !single && rend.userDataSecret {
			files = append(files, file{n.Name + "-user-data.yaml", n.userData, true})
		}
	}
	files = append(files, file{"talosconfig", rend.talosconfig, true})
	var out []renderedFile
	for _, f := range files {
		mode := os.FileMode(0o644)
		if f.secret {
			mode = 0o600
		}
		path := filepath.Join(dir, f.name)
		if err := secretfile.Write(path, f.data, mode); err != nil {
			return nil, err
		}
		out = append(out, renderedFile{Path: path, Mode: fmt.Sprintf("%04o", mode), Secret: f.secret})
	}
	return out, nil
}

func printPlan(w io.Writer, d *planDoc) {
	fmt.Fprintf(w, "Plan for cluster %s (nothing is created by this command)\n\n", d.Cluster)
	for _, s := range d.Steps {
		fmt.Fprintf(w, "Phase %s\n", s.Phase)
		for _, a := range s.Actions {
			fmt.Fprintf(w, "  - %s\n", a)
		}
	}
	title := "Firewall (Talos ingress):"
	if _, ok := d.Waits["Proxmox VE first boot"]; ok {
		title = "Firewall (Proxmox host):"
	}
	if d.FirewallNode != "" {
		title = fmt.Sprintf("Firewall (Talos ingress of %s; every node's own with --render):", d.FirewallNode)
	}
	fmt.Fprintln(w, "\n"+title)
	for _, f := range d.Firewall {
		fmt.Fprintf(w, "  - %s\n", f)
	}
	fmt.Fprintln(w, "\nWaits:")
	for _, k := range []string{"server delivery and OS install", "Proxmox VE first boot", "Talos maintenance mode", "Talos mTLS after reboot", "services healthy", "Teleport kube agent"} {
		if v, ok := d.Waits[k]; ok {
			fmt.Fprintf(w, "  - %s: %s\n", k, v)
		}
	}
	fmt.Fprintln(w, "\nPlaceholders (documentation addresses, replaced by real values at provision time):")
	known := []string{"server IP", "node IPs", "operator IP", "Teleport proxy", "Teleport join token", "root password hash"}
	for _, k := range known {
		if v, ok := d.Placeholders[k]; ok {
			fmt.Fprintf(w, "  - %s: %s\n", k, v)
		}
	}
	var others []string
	for k := range d.Placeholders {
		if !slices.Contains(known, k) {
			others = append(others, k)
		}
	}
	sort.Strings(others)
	for _, k := range others {
		fmt.Fprintf(w, "  - %s: %s\n", k, d.Placeholders[k])
	}
	switch {
	case len(d.ProvisionNeeds) == 0:
		fmt.Fprintln(w, "\nA real provision has every setting it needs.")
	default:
		fmt.Fprintf(w, "\nA real provision would still need (%d):\n", len(d.ProvisionNeeds))
		for _, n := range d.ProvisionNeeds {
			fmt.Fprintf(w, "  - %s\n", n)
		}
		if d.infisical {
			fmt.Fprintln(w, "  (Infisical, which plan does not ask, may provide some of them)")
		}
	}
	if len(d.Rendered) > 0 {
		fmt.Fprintln(w, "\nRendered:")
		for _, f := range d.Rendered {
			note := ""
			if f.Secret {
				note = " — holds secrets (private keys); keep it safe"
			}
			fmt.Fprintf(w, "  - %s (mode %s)%s\n", f.Path, f.Mode, note)
		}
	}
}

// proxmoxVMFiles renders the VMs' files as provision would make them, with
// a Talos PKI made for this plan only and placeholders for what only a run
// knows (the operator's IP when not set, the join token).
func proxmoxVMFiles(cfg *config.Config, storageKey democraticcsi.KeyPair) ([]proxmoxvms.File, error) {
	bundle, err := machineconfig.NewSecrets(cfg.Get(config.TalosVersion))
	if err != nil {
		return nil, fmt.Errorf("generate Talos secrets: %w", err)
	}
	l := provision.ProxmoxLayout()
	var ips []string
	for _, a := range l.Nodes {
		ips = append(ips, a.String())
	}
	var deployKey *platform.DeployKey
	if strings.HasPrefix(cfg.Get(config.FluxGitURL), "ssh://") {
		if raw := cfg.Get(config.FluxDeployKey); raw != "" {
			deployKey, err = platform.ParseDeployKey([]byte(raw))
		} else {
			deployKey, err = platform.GenerateDeployKey("flux@" + cfg.Get(config.ClusterName) + " (plan placeholder)")
		}
		if err != nil {
			return nil, fmt.Errorf("flux deploy key: %w", err)
		}
	}
	pin, err := provision.PlatformInput(cfg, ips, deployKey)
	if err != nil {
		return nil, err
	}
	layer, err := provision.RenderPlatformLayer(context.Background(), pin)
	if err != nil {
		return nil, fmt.Errorf("render the platform layer: %w", err)
	}
	storage, err := provision.StorageManifest(context.Background(), cfg, storageKey.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("render the storage driver: %w", err)
	}
	layer.Manifests = append(layer.Manifests, storage)
	opIP := placeholderOperatorIP
	if v := cfg.Get(config.OperatorIP); v != "" {
		opIP = v
	}
	// The kube agent joins the Teleport VM by its public name.
	proxy := provision.KubeAgentProxy(cfg)
	base := machineconfig.Input{
		ClusterName: cfg.Get(config.ClusterName), KubernetesVersion: cfg.Get(config.KubernetesVersion),
		TalosVersion: cfg.Get(config.TalosVersion), OperatorIP: netip.MustParseAddr(opIP),
		TeleportProxy: proxy, TeleportJoinToken: placeholderToken, TeleportAgentVersion: cfg.Get(config.TeleportAgentVersion),
		InfisicalClientID: cfg.Get(config.InfisicalClientID), InfisicalClientSecret: cfg.Get(config.InfisicalClientSecret),
		Secrets: bundle, Platform: layer,
	}
	files, err := proxmoxvms.Render(provision.VMInput(cfg, base))
	if err != nil {
		return nil, err
	}
	// The storage driver as the control planes apply it (it holds the
	// private key, as the Talos configs that carry it do).
	return append(files, proxmoxvms.File{Name: provision.ManifestStorage + ".yaml", Data: []byte(storage.Contents), Secret: true}), nil
}
