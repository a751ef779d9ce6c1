// Package machineconfig generates, in memory, the Talos machine configs of
// one node of a cluster (a control plane or a worker) and the talosconfig to
// reach the cluster.
//
// Two configs come out of one generation: the initial one, whose ingress
// firewall lets the operator's address alone reach the Talos API (50000) and
// the Kubernetes API (6443) from the internet, and the lockdown one, which is
// identical except that the operator rules are gone. Both carry the inline
// manifests that hand the cluster its Infisical machine identity and run the
// Teleport kube agent, which becomes the only way in after lockdown.
package machineconfig

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/config/config"
	"github.com/siderolabs/talos/pkg/machinery/config/container"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	"github.com/siderolabs/talos/pkg/machinery/config/types/network"
	"github.com/siderolabs/talos/pkg/machinery/config/types/v1alpha1"
	"github.com/siderolabs/talos/pkg/machinery/config/validation"
)

// DefaultInstallerImageBase is the Image Factory's installer repository;
// the schematic ID and Talos version complete the reference, so upgrades
// keep the schematic's extensions.
const DefaultInstallerImageBase = "factory.talos.dev/installer"

// Input is everything a node's config is made of. Secret values are only
// ever written into the generated configs, never into errors.
type Input struct {
	ClusterName string
	// Endpoint is the DNS name or IP the cluster endpoint
	// (https://<endpoint>:6443) uses; it defaults to DNSName, else PublicIP.
	Endpoint string
	PublicIP netip.Addr
	// DNSName is the node's DNS name, if Cloudflare is configured.
	DNSName           string
	KubernetesVersion string
	TalosVersion      string
	SchematicID       string
	InstallDisk       string
	// InstallerImageBase defaults to DefaultInstallerImageBase.
	InstallerImageBase string
	// OperatorIP is the only internet address that may reach the Talos and
	// Kubernetes APIs until lockdown.
	OperatorIP    netip.Addr
	TeleportProxy string
	// TeleportJoinToken is a token with the Kube role.
	TeleportJoinToken string
	// TeleportAgentLabels are static labels the kube agent puts on the
	// cluster it registers (teleport.yaml kubernetes_service.labels): a
	// label unique to the run proves which agent a registration comes from.
	TeleportAgentLabels map[string]string
	// TeleportAgentVersion defaults to DefaultTeleportAgentVersion.
	TeleportAgentVersion  string
	InfisicalClientID     string
	InfisicalClientSecret string
	Secrets               *secrets.Bundle
	// Platform is what the cluster runs from its first boot besides the
	// Teleport agent (the CNI, the Gateway API, Flux), rendered by package
	// platform; nil keeps Talos's defaults (flannel and kube-proxy).
	Platform *PlatformLayer
	// Clock dates the talosconfig client certificate; it defaults to the
	// bundle's clock, else the system clock.
	Clock secrets.Clock

	// Worker makes a worker's config; otherwise a control plane's.
	Worker bool
	// Hostname is the node's name; empty leaves Talos's stable default.
	Hostname string
	// ControlPlaneIPs are every control plane's address: certificate SANs,
	// talosconfig endpoints and the firewall. Default: PublicIP alone.
	ControlPlaneIPs []netip.Addr
	// NodeIPs are every node's address, control planes included: the
	// firewall opens node-to-node ports to these /32s only. Default:
	// PublicIP alone.
	NodeIPs []netip.Addr
	// HasWorkers keeps workloads off the control planes.
	HasWorkers bool
}

// controlPlaneIPs is ControlPlaneIPs, defaulting to the node itself.
func (in Input) controlPlaneIPs() []netip.Addr {
	if len(in.ControlPlaneIPs) > 0 {
		return unmapAll(in.ControlPlaneIPs)
	}
	return []netip.Addr{in.PublicIP.Unmap()}
}

// nodeIPs is NodeIPs, defaulting to the node itself.
func (in Input) nodeIPs() []netip.Addr {
	if len(in.NodeIPs) > 0 {
		return unmapAll(in.NodeIPs)
	}
	return []netip.Addr{in.PublicIP.Unmap()}
}

func unmapAll(ips []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, len(ips))
	for i, ip := range ips {
		out[i] = ip.Unmap()
	}
	return out
}

// PlatformLayer is the part of the machine config the platform layer
// decides: its manifests, the URLs Talos downloads and applies itself, and
// whether Talos's own CNI and kube-proxy stay out of the way.
type PlatformLayer struct {
	Manifests        []Manifest
	ExtraManifests   []string
	CNINone          bool
	DisableKubeProxy bool
}

// Result holds the rendered configs.
type Result struct {
	// ControlPlane is the initial config, with the operator firewall rules.
	ControlPlane []byte
	// Lockdown is ControlPlane without the operator firewall rules.
	Lockdown []byte
	// Talosconfig is the admin client config (endpoint and node: PublicIP).
	Talosconfig []byte
}

var (
	schematicRE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	clusterNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	dnsNameRE     = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	diskRE        = regexp.MustCompile(`^/dev/[A-Za-z0-9][A-Za-z0-9._:/+-]*$`)
	imageBaseRE   = regexp.MustCompile(`^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+$`)
	imageTagRE    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

// Validate reports every problem with the input at once. Messages name the
// field, never a secret value.
//
//nolint:gocyclo // a flat list of independent checks reads best
func (in Input) Validate() error {
	var errs []error

	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}

	check(clusterNameRE.MatchString(in.ClusterName), "cluster name %q is not a DNS label", in.ClusterName)
	check(in.Hostname == "" || clusterNameRE.MatchString(in.Hostname), "hostname %q is not a DNS label", in.Hostname)
	for _, ip := range append(append([]netip.Addr{}, in.ControlPlaneIPs...), in.NodeIPs...) {
		check(ip.IsValid() && !ip.IsUnspecified(), "node address %v is not an address", ip)
	}
	check(in.PublicIP.IsValid() && !in.PublicIP.IsUnspecified(), "public IP is not set")
	check(in.DNSName == "" || isDNSName(in.DNSName), "DNS name %q is not a DNS name", in.DNSName)
	check(in.Endpoint == "" || isDNSName(in.Endpoint) || isIP(in.Endpoint), "endpoint %q is neither a DNS name nor an IP address", in.Endpoint)
	check(schematicRE.MatchString(in.SchematicID), "schematic ID %q is not 64 lowercase hex characters", in.SchematicID)
	check(diskRE.MatchString(in.InstallDisk) && !strings.Contains(in.InstallDisk, ".."), "install disk %q is not a device path under /dev", in.InstallDisk)
	check(in.InstallerImageBase == "" || imageBaseRE.MatchString(in.InstallerImageBase), "installer image base %q is not an image repository", in.InstallerImageBase)
	check(in.OperatorIP.IsValid() && !in.OperatorIP.IsUnspecified(), "operator IP is not set")
	check(!in.OperatorIP.IsValid() || !in.PublicIP.IsValid() || in.OperatorIP.Unmap().Is4() == in.PublicIP.Unmap().Is4(),
		"operator IP %s and public IP %s are of different families: the operator could never reach the node", in.OperatorIP, in.PublicIP)
	check(isHostPort(in.TeleportProxy), "teleport proxy %q is not host:port", in.TeleportProxy)
	check(in.TeleportJoinToken != "", "teleport join token is empty")
	check(in.TeleportAgentVersion == "" || isImageTag(in.TeleportAgentVersion), "teleport agent version %q is not an image tag", in.TeleportAgentVersion)
	// The in-cluster Infisical identity is optional (a cluster provisioned
	// with --secrets-out has none), but half of one is a mistake.
	check((in.InfisicalClientID == "") == (in.InfisicalClientSecret == ""), "infisical client ID and secret must be given together")
	check(in.Secrets != nil, "secrets bundle is missing")

	if err := ValidateVersions(in.TalosVersion, in.KubernetesVersion); err != nil {
		errs = append(errs, err)
	}

	return errors.Join(errs...)
}

func isDNSName(s string) bool { return len(s) <= 253 && dnsNameRE.MatchString(s) }

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)

	return err == nil
}

func isHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)

	return err == nil && host != "" && port != "" && (isDNSName(host) || isIP(host))
}

func isImageTag(s string) bool { return imageTagRE.MatchString(s) }

func (in Input) endpointHost() string {
	switch {
	case in.Endpoint != "":
		return in.Endpoint
	case in.DNSName != "":
		return in.DNSName
	default:
		return in.PublicIP.Unmap().String()
	}
}

// Generate renders the initial and lockdown configs and the talosconfig.
// Both configs are validated for bare metal before they are returned.
func Generate(in Input) (*Result, error) {
	if err := in.Validate(); err != nil {
		return nil, fmt.Errorf("generate machine config: %w", err)
	}

	base, input, err := baseConfig(in)
	if err != nil {
		return nil, fmt.Errorf("generate machine config for cluster %s: %w", in.ClusterName, err)
	}

	podCIDRs, serviceCIDRs, err := clusterCIDRs(base)
	if err != nil {
		return nil, fmt.Errorf("generate machine config for cluster %s: %w", in.ClusterName, err)
	}

	publicIP := in.PublicIP.Unmap()

	fw := func(operator netip.Addr) []config.Document {
		return firewallDocuments(firewallInput{node: publicIP, worker: in.Worker, controlPlanes: in.controlPlaneIPs(), nodes: in.nodeIPs(),
			pods: podCIDRs, services: serviceCIDRs, operator: operator})
	}

	controlPlane, err := render(base, fw(in.OperatorIP.Unmap()))
	if err != nil {
		return nil, fmt.Errorf("render initial machine config: %w", err)
	}

	lockdown, err := render(base, fw(netip.Addr{}))
	if err != nil {
		return nil, fmt.Errorf("render lockdown machine config: %w", err)
	}

	talosconfig, err := input.Talosconfig()
	if err != nil {
		return nil, fmt.Errorf("generate talosconfig: %w", err)
	}

	if ctx, ok := talosconfig.Contexts[in.ClusterName]; ok {
		ctx.Nodes = addrStrings(in.controlPlaneIPs())
	}

	talosconfigBytes, err := talosconfig.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode talosconfig: %w", err)
	}

	return &Result{ControlPlane: controlPlane, Lockdown: lockdown, Talosconfig: talosconfigBytes}, nil
}

func addrStrings(ips []netip.Addr) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

// baseConfig generates the node's documents without any firewall.
func baseConfig(in Input) (*container.Container, *generate.Input, error) {
	contract, err := parseTalosVersion(in.TalosVersion)
	if err != nil {
		return nil, nil, err
	}

	// A copy, so the caller's bundle keeps its own clock.
	bundle := *in.Secrets

	switch {
	case in.Clock != nil:
		bundle.Clock = in.Clock
	case bundle.Clock == nil:
		bundle.Clock = secrets.NewClock()
	}

	imageBase := in.InstallerImageBase
	if imageBase == "" {
		imageBase = DefaultInstallerImageBase
	}

	// Every control plane's address and the DNS name: the API server and
	// apid certificates must be valid whichever control plane answers.
	cps := addrStrings(in.controlPlaneIPs())
	sans := append([]string{}, cps...)
	if in.DNSName != "" {
		sans = append(sans, in.DNSName)
	}

	input, err := generate.NewInput(
		in.ClusterName,
		"https://"+net.JoinHostPort(in.endpointHost(), "6443"),
		strings.TrimPrefix(in.KubernetesVersion, "v"),
		generate.WithVersionContract(contract),
		generate.WithSecretsBundle(&bundle),
		generate.WithInstallDisk(in.InstallDisk),
		generate.WithInstallImage(fmt.Sprintf("%s/%s:%s", imageBase, in.SchematicID, in.TalosVersion)),
		generate.WithAdditionalSubjectAltNames(sans),
		generate.WithAllowSchedulingOnControlPlanes(!in.HasWorkers),
		generate.WithEndpointList(cps),
		// KubePrism: every node's own load balancer over all API servers,
		// so in-cluster clients survive a control plane going away.
		generate.WithKubePrismPort(KubePrismPort),
	)
	if err != nil {
		return nil, nil, err
	}

	kind := machine.TypeControlPlane
	if in.Worker {
		kind = machine.TypeWorker
	}

	provider, err := input.Config(kind)
	if err != nil {
		return nil, nil, err
	}

	agentVersion := in.TeleportAgentVersion
	if agentVersion == "" {
		agentVersion = DefaultTeleportAgentVersion
	}

	manifests, err := inlineManifests(manifestInput{
		clusterName:           in.ClusterName,
		teleportProxy:         in.TeleportProxy,
		teleportJoinToken:     in.TeleportJoinToken,
		teleportAgentVersion:  agentVersion,
		teleportAgentLabels:   in.TeleportAgentLabels,
		infisicalClientID:     in.InfisicalClientID,
		infisicalClientSecret: in.InfisicalClientSecret,
	})
	if err != nil {
		return nil, nil, err
	}

	patched, err := provider.PatchV1Alpha1(func(cfg *v1alpha1.Config) error {
		if in.Worker {
			// Workers get no API server and no inline manifests: only
			// control planes apply those.
			return nil
		}

		cfg.ClusterConfig.APIServerConfig.CertSANs = dedupe(cfg.ClusterConfig.APIServerConfig.CertSANs)

		if pl := in.Platform; pl != nil {
			applyPlatform(cfg, pl)
		}

		for _, m := range manifests {
			cfg.ClusterConfig.ClusterInlineManifests = append(cfg.ClusterConfig.ClusterInlineManifests,
				v1alpha1.ClusterInlineManifest{InlineManifestName: m.Name, InlineManifestContents: m.Contents})
		}

		return nil
	})
	if err != nil {
		return nil, nil, err
	}

	c, ok := patched.(*container.Container)
	if !ok {
		return nil, nil, fmt.Errorf("unexpected config type %T", patched)
	}

	if in.Hostname != "" {
		if c, err = withHostname(c, in.Hostname); err != nil {
			return nil, nil, err
		}
	}

	return c, input, nil
}

// withHostname names the node: the HostnameConfig document replaces the
// generator's stable automatic name (Talos 1.12+); older contracts take the
// v1alpha1 field.
func withHostname(c *container.Container, hostname string) (*container.Container, error) {
	var docs []config.Document

	found := false

	for _, doc := range c.Documents() {
		if h, ok := doc.(*network.HostnameConfigV1Alpha1); ok {
			h = h.DeepCopy()
			h.ConfigAuto = nil
			h.ConfigHostname = hostname
			doc, found = h, true
		}

		docs = append(docs, doc)
	}

	if found {
		return container.New(docs...)
	}

	patched, err := c.PatchV1Alpha1(func(cfg *v1alpha1.Config) error {
		if cfg.MachineConfig.MachineNetwork == nil {
			cfg.MachineConfig.MachineNetwork = &v1alpha1.NetworkConfig{}
		}

		cfg.MachineConfig.MachineNetwork.NetworkHostname = hostname //nolint:staticcheck // the field older contracts read

		return nil
	})
	if err != nil {
		return nil, err
	}

	out, ok := patched.(*container.Container)
	if !ok {
		return nil, fmt.Errorf("unexpected config type %T", patched)
	}

	return out, nil
}

// applyPlatform puts the platform layer into the cluster config. Its
// manifests come before the Teleport agent's: Talos applies Namespaces and
// CRDs first anyway, and the rest in this order.
func applyPlatform(cfg *v1alpha1.Config, pl *PlatformLayer) {
	if pl.CNINone {
		if cfg.ClusterConfig.ClusterNetwork == nil {
			cfg.ClusterConfig.ClusterNetwork = &v1alpha1.ClusterNetworkConfig{}
		}

		cfg.ClusterConfig.ClusterNetwork.CNI = &v1alpha1.CNIConfig{CNIName: "none"}
	}

	if pl.DisableKubeProxy {
		if cfg.ClusterConfig.ProxyConfig == nil {
			cfg.ClusterConfig.ProxyConfig = &v1alpha1.ProxyConfig{}
		}

		disabled := true
		cfg.ClusterConfig.ProxyConfig.Disabled = &disabled
	}

	cfg.ClusterConfig.ExtraManifests = append(cfg.ClusterConfig.ExtraManifests, pl.ExtraManifests...)

	for _, m := range pl.Manifests {
		cfg.ClusterConfig.ClusterInlineManifests = append(cfg.ClusterConfig.ClusterInlineManifests,
			v1alpha1.ClusterInlineManifest{InlineManifestName: m.Name, InlineManifestContents: m.Contents})
	}
}

// dedupe drops repeated names while keeping the order: the generator adds
// the endpoint's host to the API server SANs on its own.
func dedupe(names []string) []string {
	var out []string

	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}

	return out
}

func clusterCIDRs(cfg config.Config) (pods, services []netip.Prefix, err error) {
	parse := func(cidrs []string) ([]netip.Prefix, error) {
		out := make([]netip.Prefix, 0, len(cidrs))

		for _, c := range cidrs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				return nil, fmt.Errorf("cluster CIDR %q: %w", c, err)
			}

			out = append(out, p)
		}

		return out, nil
	}

	if pods, err = parse(cfg.Cluster().Network().PodCIDRs()); err != nil {
		return nil, nil, err
	}

	services, err = parse(cfg.Cluster().Network().ServiceCIDRs())

	return pods, services, err
}

// render appends the firewall documents to the base config, validates the
// result for bare metal and encodes it without comments.
func render(base *container.Container, firewall []config.Document) ([]byte, error) {
	// Clones, because both configs start from the same base documents.
	var docs []config.Document
	for _, doc := range base.Documents() {
		docs = append(docs, doc.Clone())
	}

	docs = append(docs, firewall...)

	c, err := container.New(docs...)
	if err != nil {
		return nil, err
	}

	if _, err := c.Validate(MetalMode{}, validation.WithLocal()); err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}

	return c.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
}
