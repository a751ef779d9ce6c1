// Package provision is the seven-phase contract: each phase in its own file,
// every created resource's undo pushed right after the call that created it.
// The same code runs against the real services and against the sandbox; only
// the endpoints in the Factory differ.
package provision

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"

	"github.com/rawkode/rawkode-cloud/internal/cloudflare"
	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/redact"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
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
}

// Provisioner holds what the phases hand to each other.
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

	// Filled as the phases go.
	sshKeys      []string
	server       *scaleway.Server
	publicIP     string
	dnsChange    *cloudflare.Change
	operatorIP   netip.Addr
	agentVersion string // Teleport kube agent image tag
	token        teleport.Token
	bundle       *secrets.Bundle
	artifacts    *machineconfig.Result
	stored       string // where talosconfig/kubeconfig were kept
	lockedDown   bool

	// Work started ahead of the critical path (see the phases).
	bundleTask *pipeline.Task
	dnsTask    *pipeline.Task
	prepTask   *pipeline.Task
	kubeTask   *pipeline.Task
	mu         sync.Mutex
	cpuOnPath  time.Duration // CPU-bound work the critical path waited for
}

// spawn starts background work, or runs it right away in Sequential mode.
func (p *Provisioner) spawn(r *pipeline.Run, fn func(ctx context.Context) error) *pipeline.Task {
	if p.opts.Sequential {
		return r.Done(fn)
	}
	return r.Go(fn)
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
	return &Provisioner{opts: opts, cfg: opts.Config}
}

// Phases is the whole order of provisioning, readable in one place.
func (p *Provisioner) Phases() []pipeline.Phase {
	return []pipeline.Phase{
		pipeline.PhaseFunc("Resolve secrets", p.resolveSecrets),
		pipeline.PhaseFunc("Order server", p.orderServer),
		pipeline.PhaseFunc("Wait for install and Talos", p.waitForTalos),
		pipeline.PhaseFunc("Update DNS", p.updateDNS),
		pipeline.PhaseFunc("Generate config", p.generateConfig),
		pipeline.PhaseFunc("Bootstrap cluster", p.bootstrap),
		pipeline.PhaseFunc("Verify and lock down", p.verifyAndLockDown),
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
	if p.server != nil {
		s["server_id"] = p.server.ID
		s["zone"] = p.server.Zone
	}
	if p.publicIP != "" {
		s["ip"] = p.publicIP
	}
	if p.dnsChange != nil {
		s["dns_name"] = p.dnsChange.Name
	}
	s["locked_down"] = p.lockedDown
	return s
}

// timeout reads a wait's timeout setting.
func (p *Provisioner) timeout(name string) time.Duration { return p.cfg.Duration(name) }
