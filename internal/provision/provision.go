// Package provision builds a Talos cluster of one or more nodes in seven
// phases, and destroys it again.
//
// The shape of a run:
//
//   - Phases (Phases, one file each: phase0_secrets.go … phase6_verify.go)
//     are how a run is shown and what its exit codes mean. Each phase file
//     says what happens in it and is the one place to read it.
//   - Nodes (node.go) are the cluster's members. Every per-node step runs for
//     all nodes side by side (eachNode), and what a step learns about a node
//     lives on the Node, some of it as promises that later work waits on.
//   - Work started ahead of time is a pipeline.Work: it declares what it
//     needs by waiting on promises and other work, pushes the undo of what it
//     creates right after creating it, is started as soon as its inputs are
//     on their way, and is collected by the phase it belongs to. Without
//     overlap (Options.Sequential) the phase runs the very same work inline.
//   - A Topology (topology.go) is how machines come to exist and how the
//     operator reaches them: phases 1 and 2 and its share of phase 0's
//     checks. Elastic Metal is metal.go; everything else is topology-agnostic.
//   - Per-node Talos configs are rendered in one place (nodeconfig.go), and
//     the checks that must pass before lockdown are one list (verify.go).
//
// Every created resource's undo is pushed right after the call that created
// it. The same code runs against the real services and against the sandbox;
// only the endpoints in the Factory differ.
package provision

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"

	"github.com/rawkode/rawkode-cloud/internal/cloudflare"
	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/platform"
	"github.com/rawkode/rawkode-cloud/internal/proxmoxvms"
	"github.com/rawkode/rawkode-cloud/internal/redact"
	"github.com/rawkode/rawkode-cloud/internal/teleport"
)

// Options configure one provisioning run.
type Options struct {
	Config   *config.Config
	Factory  Factory
	Redactor *redact.Redactor
	// Sandbox is true when every endpoint is an emulator (shown in the summary).
	Sandbox bool
	// Sequential runs every step in contract order on the critical path, as
	// the original design did: no work ahead of time, no overlapping waits.
	// It exists to measure what the overlaps save.
	Sequential bool
	// Rebuild, when set, rebuilds a cluster from what the secret store
	// holds instead of creating a new one (see rebuild.go).
	Rebuild *RebuildFrom
	// Resume, when set, continues a run that left its cluster behind on
	// purpose (see resume.go).
	Resume *ResumeFrom
}

// Provisioner holds what the phases hand to each other: the cluster-wide
// state, the nodes, and the work that may run ahead of its phase.
type Provisioner struct {
	opts Options
	cfg  *config.Config

	// Built in phase 0.
	scw   Servers
	dns   DNS
	store SecretStore
	tp    Teleport
	talos Talos
	ip    IPDetector
	topo  Topology
	// host is the proxmox topology's Proxmox VE host (nil for metal).
	host *proxmoxHost

	nodes []*Node

	// runID is unique to this run: the kube agent carries it as a static
	// label, so phase 6 can tell its registration from any other agent's
	// under the same cluster name.
	runID string

	// Filled as the phases go.
	operatorIP   netip.Addr
	agentVersion string // Teleport kube agent image tag
	tokMu        sync.Mutex
	token        teleport.Token   // the one the nodes' configs carry (token.go)
	minted       []teleport.Token // every token this run created, renewals included
	talosconfig  []byte
	stored       string // where talosconfig/kubeconfig were kept

	// The platform layer (platform.go): the Flux deploy key resolved in
	// phase 0, the manifests rendered in phase 4, the kubeconfig that
	// verification reads the cluster with.
	deployKey      *platform.DeployKey
	newDeployKey   bool
	platform       *machineconfig.PlatformLayer
	kubeconfigData []byte

	// Work that may run ahead of the phase that collects it; see work.go.
	bundle     *pipeline.Work[*secrets.Bundle]
	dnsRecords *pipeline.Work[[]cloudflare.Change]
	prep       *pipeline.Work[struct{}]
	kubeconfig *pipeline.Work[struct{}]

	mu        sync.Mutex
	cpuOnPath time.Duration // CPU-bound work the critical path waited for
}

// ahead starts work before the phase that needs it, unless the run is
// Sequential (then the phase runs it when it gets there).
func (p *Provisioner) ahead(r *pipeline.Run, starts ...interface{ Start(*pipeline.Run) }) {
	if p.opts.Sequential {
		return
	}
	for _, w := range starts {
		w.Start(r)
	}
}

// onPath adds CPU-bound time the critical path had to wait for.
func (p *Provisioner) onPath(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cpuOnPath += d
}

// CPUOnPath is the CPU-bound time spent on the critical path (for reports).
func (p *Provisioner) CPUOnPath() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cpuOnPath
}

// New prepares a run.
func New(opts Options) *Provisioner {
	if opts.Redactor == nil {
		opts.Redactor = redact.New()
	}
	p := &Provisioner{opts: opts, cfg: opts.Config, runID: randomHex(8)}
	// Phase 0 plans again once Infisical filled in the settings.
	p.nodes = p.planNodes()
	if p.cfg.Get(config.Topology) == config.TopologyProxmox {
		p.host = newProxmoxHost(p, nil)
	}
	p.defineWork()
	return p
}

// Phases is the whole order of provisioning, readable in one place.
func (p *Provisioner) Phases() []pipeline.Phase {
	if p.host != nil {
		// The proxmox topology: its host and the VMs on it stand in for
		// phase 2; the Talos phases are the shared ones.
		return []pipeline.Phase{
			pipeline.PhaseFunc("Resolve secrets", p.resolveSecrets),              // phase0_secrets.go
			pipeline.PhaseFunc("Order server", p.orderServers),                   // phase1_order.go
			pipeline.PhaseFunc("Prepare Proxmox VE host and VMs", p.prepareHost), // proxmox.go, proxmox_vms.go
			pipeline.PhaseFunc("Update DNS", p.updateDNS),                        // phase3_dns.go
			pipeline.PhaseFunc("Generate config", p.generateConfig),              // phase4_config.go
			pipeline.PhaseFunc("Bootstrap cluster", p.bootstrap),                 // phase5_bootstrap.go
			pipeline.PhaseFunc("Verify and lock down", p.verifyAndLockDown),      // phase6_verify.go
		}
	}
	return []pipeline.Phase{
		pipeline.PhaseFunc("Resolve secrets", p.resolveSecrets),          // phase0_secrets.go
		pipeline.PhaseFunc("Order server", p.orderServers),               // phase1_order.go
		pipeline.PhaseFunc("Wait for install and Talos", p.waitForTalos), // phase2_wait.go
		pipeline.PhaseFunc("Update DNS", p.updateDNS),                    // phase3_dns.go
		pipeline.PhaseFunc("Generate config", p.generateConfig),          // phase4_config.go
		pipeline.PhaseFunc("Bootstrap cluster", p.bootstrap),             // phase5_bootstrap.go
		pipeline.PhaseFunc("Verify and lock down", p.verifyAndLockDown),  // phase6_verify.go
	}
}

// Close releases the connections phase 0 opened.
func (p *Provisioner) Close() {
	if p.store != nil {
		p.store.Close()
	}
	if p.tp != nil {
		_ = p.tp.Close()
	}
	if p.host != nil && p.host.vmTeleport != nil && p.tp != Teleport(p.host.vmTeleport) {
		_ = p.host.vmTeleport.Close()
	}
}

// planNodes names the cluster's nodes as the settings say; the proxmox
// topology always runs its VM plan's three control planes.
func (p *Provisioner) planNodes() []*Node {
	if p.cfg.Get(config.Topology) == config.TopologyProxmox {
		return planNodes(p.clusterName(), proxmoxvms.ControlPlanes, 0)
	}
	return planNodes(p.clusterName(), max(p.cfg.Int(config.ControlPlanes), 1), p.cfg.Int(config.Workers))
}

// clusterName is used in names, tags and paths.
func (p *Provisioner) clusterName() string { return p.cfg.Get(config.ClusterName) }

// secretsPath is where the cluster's credentials live in Infisical.
func (p *Provisioner) secretsPath() string { return SecretsPath(p.clusterName()) }

// SecretsPath is the Infisical folder holding a cluster's credentials.
func SecretsPath(cluster string) string { return "/rawkode-cloud/" + cluster }

// Names of the secrets stored per cluster.
const (
	SecretTalosBundle = "TALOS_SECRETS_BUNDLE"
	SecretTalosconfig = "TALOSCONFIG"
	SecretKubeconfig  = "KUBECONFIG"
)

// Summary describes what was built, for the final report.
func (p *Provisioner) Summary() map[string]any {
	s := map[string]any{
		"cluster":            p.clusterName(),
		"teleport_cluster":   p.clusterName(),
		"connect":            fmt.Sprintf("tsh kube login %s && kubectl get nodes", p.clusterName()),
		"credentials_stored": p.stored,
	}
	first := p.nodes[0]
	if first.Machine.ID != "" {
		s["server_id"] = first.Machine.ID
		s["zone"] = first.Machine.Zone
	}
	if ip := first.IP(); ip != "" {
		s["ip"] = ip
	}
	if chs, ok := p.dnsRecords.Peek(); ok && len(chs) > 0 {
		s["dns_name"] = chs[0].Name
	}
	locked := true
	for _, n := range p.nodes {
		locked = locked && n.lockedDown
	}
	s["locked_down"] = locked
	if p.host != nil {
		s["locked_down"] = locked && p.host.lockedDown
		s["ip"] = p.host.server.IPv4
		vms := make([]string, 0, len(p.host.vms))
		for _, vm := range p.host.vms {
			vms = append(vms, fmt.Sprintf("%s %d %s", vm.Name, vm.VMID, vm.Address.Addr()))
		}
		s["proxmox"] = map[string]any{"node": p.host.node, "version": p.host.version, "bridge": ProxmoxBridge + " " + p.host.cidr.String(),
			"api_token": ProxmoxUser + "!" + ProxmoxTokenID, "vms": vms}
	}
	return s
}

// timeout reads a wait's timeout setting.
func (p *Provisioner) timeout(name string) time.Duration { return p.cfg.Duration(name) }

// agentLabels are the static labels this run's kube agent registers with.
func (p *Provisioner) agentLabels() map[string]string {
	return map[string]string{teleport.LabelRun: p.runID}
}
