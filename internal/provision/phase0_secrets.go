package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/infisical"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/pivot"
	"github.com/rawkode/rawkode-cloud/internal/proxmoxvms"
	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/teleport"
	"github.com/rawkode/rawkode-cloud/internal/teleportvm"
)

// required are the settings provisioning cannot start without, whatever
// the topology.
var required = []string{
	config.ClusterName, config.ScalewayAccessKey, config.ScalewaySecretKey, config.ScalewayProjectID,
	config.ScalewayOfferID, config.ScalewayOSID,
}

// MetalTeleport are the settings of the existing Teleport the metal
// topology's cluster registers with. The proxmox topology builds a Teleport
// VM of its own and registers there: it never uses them.
var MetalTeleport = []string{config.TeleportProxy, config.TeleportIdentityFile, config.TeleportIdentity}

// Required lists the settings provisioning the topology cannot start
// without (an unknown topology, reported as malformed, counts as metal).
func Required(topology string) []string {
	out := slices.Clone(required)
	if topology != config.TopologyProxmox {
		out = append(out, config.TeleportProxy)
	}
	return out
}

// Requirements is everything phase 0 validates locally for cfg's topology.
// What the topology does not use is neither demanded nor checked: a
// teleport-proxy left in a shared config must not stop a proxmox run.
func Requirements(cfg *config.Config) config.Requirements {
	topology := cfg.Get(config.Topology)
	req := config.Requirements{Required: Required(topology), Extra: extraChecks}
	if topology == config.TopologyProxmox {
		req.Ignore = MetalTeleport
	}
	return req
}

// UnusedSettings lists the settings given (by file, environment, flag or
// Infisical) that cfg's topology does not use, so that phase 0 can say so
// instead of letting the user believe they matter.
func UnusedSettings(cfg *config.Config) []string {
	var out []string
	for _, name := range Requirements(cfg).Ignore {
		if v := cfg.Value(name); v.Raw != "" && v.Source != config.FromDefault && v.Source != config.FromSandbox {
			out = append(out, name)
		}
	}
	return out
}

func extraChecks(cfg *config.Config) config.Problems {
	var probs config.Problems
	// The cloud-init pivot writes the Image Factory's .raw.zst metal image.
	if err := pivot.CheckTalosVersion(cfg.Get(config.TalosVersion)); err != nil {
		probs = append(probs, cfg.ProblemFor(config.TalosVersion, "cannot be installed on Elastic Metal: "+err.Error()))
	}
	// Node names must stay DNS labels: <cluster>-worker-NN.
	if nodes := planNodes(cfg.Get(config.ClusterName), cfg.Int(config.ControlPlanes), cfg.Int(config.Workers)); len(nodes) > 1 {
		longest := ""
		for _, n := range nodes {
			if len(n.Name) > len(longest) {
				longest = n.Name
			}
		}
		if len(longest) > 63 {
			probs = append(probs, cfg.ProblemFor(config.ClusterName, fmt.Sprintf("is too long for %d nodes: node name %s exceeds 63 characters", len(nodes), longest)))
		}
	}
	if !cfg.WellFormed(config.TalosVersion, config.KubernetesVersion) {
		// Reported as malformed already.
	} else if err := machineconfig.ValidateVersions(cfg.Get(config.TalosVersion), cfg.Get(config.KubernetesVersion)); err != nil {
		probs = append(probs, cfg.ProblemFor(config.TalosVersion, "cannot be generated for: "+err.Error()))
	}
	probs = append(probs, platformProblems(cfg)...)
	if cfg.Get(config.Topology) == config.TopologyProxmox && !cfg.IsSet(config.Domain) {
		probs = append(probs, config.Problem{Setting: config.Domain, Source: config.Unset,
			Message: "the proxmox topology names its host (and later its public services) under this domain"})
	}
	if cfg.Get(config.Topology) == config.TopologyProxmox {
		probs = append(probs, githubProblems(cfg)...)
		// Its VM plan is three control planes on the one host.
		given := func(name string) bool {
			v := cfg.Value(name)
			return v.Source != config.FromDefault && v.Source != config.Unset
		}
		if given(config.ControlPlanes) && cfg.Int(config.ControlPlanes) != proxmoxvms.ControlPlanes {
			probs = append(probs, cfg.ProblemFor(config.ControlPlanes, fmt.Sprintf("cannot be changed in the proxmox topology: it runs %d Talos control-plane VMs", proxmoxvms.ControlPlanes)))
		}
		if given(config.Workers) && cfg.Int(config.Workers) != 0 {
			probs = append(probs, cfg.ProblemFor(config.Workers, "must be 0 in the proxmox topology: its VM plan has no worker VMs (workloads run on the control planes)"))
		}
	}
	if cfg.Get(config.Topology) == config.TopologyProxmox && cfg.Get(config.TalosConfigDelivery) == config.DeliveryInstall {
		probs = append(probs, cfg.ProblemFor(config.TalosConfigDelivery, "applies to the metal topology only: the proxmox topology's server runs Proxmox VE, and its Talos VMs read their config from a NoCloud volume at first boot, so there is no maintenance mode to close"))
	}
	if !InfisicalConfigured(cfg) && !cfg.IsSet(config.SecretsOut) {
		probs = append(probs, config.Problem{Setting: config.SecretsOut, Source: config.Unset,
			Message: "the cluster's talosconfig, kubeconfig and secrets bundle must be kept somewhere: configure Infisical (the infisical-* settings) or name a directory with --secrets-out (files are written 0600)"})
	}
	return probs
}

// VersionProblems checks the Talos and Kubernetes versions that Infisical
// can no longer change (given by file, env or flag; Infisical only fills
// defaults), so a version the Talos library cannot generate for is reported
// without asking anyone. The full check runs again once Infisical filled in.
func VersionProblems(cfg *config.Config) config.Problems {
	if !cfg.WellFormed(config.TalosVersion, config.KubernetesVersion) {
		return nil // reported as malformed already
	}
	talos, kube := cfg.Value(config.TalosVersion), cfg.Value(config.KubernetesVersion)
	final := func(v config.Value) bool { return v.Source != config.FromDefault && v.Source != config.Unset }
	var err error
	switch {
	case final(talos) && final(kube):
		err = machineconfig.ValidateVersions(talos.Raw, kube.Raw)
	case final(talos):
		err = machineconfig.ValidateTalosVersion(talos.Raw)
	}
	if err != nil {
		return config.Problems{cfg.ProblemFor(config.TalosVersion, "cannot be generated for: "+err.Error())}
	}
	return nil
}

// InfisicalConfigured reports whether any Infisical login setting is present
// (validation then insists on all of them).
func InfisicalConfigured(cfg *config.Config) bool {
	for _, name := range []string{config.InfisicalURL, config.InfisicalClientID, config.InfisicalClientSecret, config.InfisicalProjectID} {
		if cfg.IsSet(name) {
			return true
		}
	}
	return false
}

// FillFromInfisical is the first half of phase 0, shared with `config show`:
// log in, read the settings and fill only those still unset. The store stays
// open for the caller (nil when Infisical is not configured).
func FillFromInfisical(ctx context.Context, f Factory, cfg *config.Config, addSecret func(...string)) (SecretStore, []string, error) {
	if !InfisicalConfigured(cfg) {
		return nil, nil, nil
	}
	// Infisical's own settings must be complete and well formed before we
	// dial it, and whatever it can no longer change must be valid too.
	if err := cfg.Validate(config.Requirements{Extra: VersionProblems}); err != nil {
		return nil, nil, fail.UsageError(err)
	}
	store, err := f.Infisical(ctx, cfg)
	if err != nil {
		return nil, nil, phase0Error([]error{fmt.Errorf("log in to Infisical: %w", err)})
	}
	values, err := store.List(ctx)
	if err != nil {
		store.Close()
		return nil, nil, phase0Error([]error{fmt.Errorf("read settings from Infisical: %w", err)})
	}
	public := map[string]bool{}
	for _, s := range config.Schema {
		if s.Infisical != "" && !s.Secret {
			public[s.Infisical] = true
		}
	}
	for name, v := range values {
		// Anything the store holds that is not a known plain setting is
		// treated as secret: over-redaction is safe, the reverse is not.
		if !public[name] {
			addSecret(v)
		}
	}
	filled := cfg.FillFromInfisical(values)
	addSecret(cfg.Secrets()...)
	return store, filled, nil
}

// resolveSecrets is phase 0: everything later phases need is checked here,
// before phase 1 spends money. Any failure is a configuration error (exit 2).
func (p *Provisioner) resolveSecrets(ctx context.Context, r *pipeline.Run) error {
	f := p.opts.Factory
	var store SecretStore
	var filled []string
	err := p.bounded(ctx, "Infisical "+orDefault(p.cfg.Get(config.InfisicalURL), "(Infisical Cloud)"), func(ctx context.Context) error {
		var err error
		store, filled, err = FillFromInfisical(ctx, f, p.cfg, p.opts.Redactor.Add)
		return err
	})
	if err != nil {
		return err
	}
	p.store = store
	if store != nil {
		r.Info(fmt.Sprintf("filled %d setting(s) from Infisical", len(filled)), map[string]any{"settings": filled})
	} else {
		r.Info("Infisical not configured; using file, environment and flags only", nil)
	}
	if err := p.cfg.Validate(Requirements(p.cfg)); err != nil {
		return fail.UsageError(err)
	}
	if unused := UnusedSettings(p.cfg); len(unused) > 0 {
		r.Info("not used by the proxmox topology (its cluster registers with the Teleport VM this run creates): "+strings.Join(unused, ", "), nil)
	}
	// Infisical may have filled the node counts.
	p.nodes = p.planNodes()
	if len(p.controlPlanes()) > 1 && !p.cfg.IsSet(config.CloudflareDNSName) {
		r.Warn("without Cloudflare the cluster endpoint is the first control plane's address: clients outside the cluster lose the API with that node (KubePrism keeps in-cluster clients going)", nil)
	}
	if p.scw, err = f.Scaleway(p.cfg); err != nil {
		return fail.UsageError(err)
	}
	if p.dns, err = f.Cloudflare(p.cfg); err != nil {
		return fail.UsageError(err)
	}
	p.talos = f.Talos(p.cfg)
	p.ip = f.IPDetector(p.cfg)
	mt := &metal{cfg: p.cfg, scw: p.scw, talos: p.talos, cluster: p.clusterName(), sequential: p.opts.Sequential,
		install: installDelivery(p.cfg) && p.host == nil, nodeConfig: p.renderedConfig}
	if mt.install {
		if mt.factory, err = f.ImageFactory(p.cfg); err != nil {
			return fail.UsageError(err)
		}
	}
	p.topo = mt
	if p.host != nil {
		// The host is Debian turned Proxmox VE: Talos config delivery
		// concerns its VMs, not the server.
		p.host.m = mt
		p.topo = p.host
	}
	if p.opts.Resume != nil {
		p.topo = newResumed(p.opts.Resume.Servers)
	}

	// The remote checks are independent: run them side by side (nothing
	// spends money yet, and every second here delays the order) and report
	// every failure at once.
	checks := []struct {
		service string
		run     func(context.Context, *pipeline.Run) error
	}{
		{"Scaleway (offer, OS, SSH keys, existing servers)", p.checkTopology},
		{"Teleport " + p.cfg.Get(config.TeleportProxy), p.checkTeleport},
		{"Cloudflare", p.checkCloudflare},
		{"public-IP detection", p.checkOperatorIP},
		{"Infisical (write check)", p.checkSecretStore},
	}
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, check := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.bounded(ctx, check.service, func(ctx context.Context) error { return check.run(ctx, r) })
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return phase0Error(errs)
	}
	if err := p.resolveDeployKey(ctx, r); err != nil {
		return fail.UsageError(err)
	}

	// The Talos PKI needs nothing from the machines: generate it while the
	// hardware is delivered instead of on the critical path in phase 4.
	p.ahead(r, p.bundle)
	return nil
}

// phase0CheckBudget bounds each of phase 0's network checks, retries
// included: they are reads and one probe write, which answer in well under
// a second when the service is up. A service that accepts connections and
// never answers costs seconds here, not the minutes of a call budget, and
// nothing has been ordered yet.
const phase0CheckBudget = 15 * time.Second

// bounded runs one phase-0 check within phase0CheckBudget and, when it
// runs out, says which service did not answer; that is an outage (exit 2,
// "service unavailable"), not a configuration error. The sandbox keeps
// the same bound: its calls have their own, scaled budgets, and a check of
// several calls on a loaded machine must not be cut short.
func (p *Provisioner) bounded(ctx context.Context, service string, check func(context.Context) error) error {
	budget := phase0CheckBudget
	cctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	err := check(cctx)
	if err != nil && ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
		return retry.Transient(fmt.Errorf("%s did not answer within %s: %w", service, budget, err), 0)
	}
	return err
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// generateSecrets creates the Talos PKI: seconds of CPU.
func (p *Provisioner) generateSecrets(context.Context, *pipeline.Run) (*secrets.Bundle, error) {
	if p.reusedBundle() != nil {
		return p.storedSecrets()
	}
	return machineconfig.NewSecrets(p.cfg.Get(config.TalosVersion))
}

// checkTopology asks the topology whether every node's machine can be made.
func (p *Provisioner) checkTopology(ctx context.Context, r *pipeline.Run) error {
	return p.topo.Check(ctx, r, p.nodes)
}

func (p *Provisioner) checkTeleport(ctx context.Context, r *pipeline.Run) error {
	if p.host != nil {
		// The cluster's kube agent joins the Teleport VM this run creates
		// (useVMTeleport): teleport-proxy is asked for nothing.
		return nil
	}
	tp, err := p.opts.Factory.Teleport(ctx, p.cfg)
	if err != nil {
		return fmt.Errorf("connect to Teleport: %w", err)
	}
	p.tp = tp
	if err := tp.Check(ctx); err != nil {
		return fmt.Errorf("check Teleport %s: %w", p.cfg.Get(config.TeleportProxy), err)
	}
	// Reachable is not enough: without token create the run would fail
	// after the server is billed, without kube_server read in phase 6.
	if err := tp.CheckPermissions(ctx); err != nil {
		return fmt.Errorf("check Teleport %s: %w", p.cfg.Get(config.TeleportProxy), err)
	}
	name := p.clusterName()
	agents, err := tp.KubeAgents(ctx, name)
	if err != nil {
		return fmt.Errorf("check Teleport %s: %w", p.cfg.Get(config.TeleportProxy), err)
	}
	if len(agents) > 0 {
		hosts := make([]string, 0, len(agents))
		for _, a := range agents {
			hosts = append(hosts, a.Host)
		}
		r.Warn(fmt.Sprintf("Teleport already lists %d kube server(s) named %s (an earlier cluster's agent, kept until its heartbeat expires, or another cluster using the name); only this run's agent will count", len(agents), name),
			map[string]any{"hosts": hosts, "run_label": teleport.LabelRun + "=" + p.runID})
	}
	p.agentVersion = p.cfg.Get(config.TeleportAgentVersion)
	if p.agentVersion == "" {
		// The agent runs the cluster's own version: Teleport supports agents
		// no newer than the cluster and at most one major version behind.
		p.agentVersion = strings.TrimPrefix(tp.ServerVersion(), "v")
	}
	r.Info("Teleport reachable and credentials accepted", map[string]any{"proxy": p.cfg.Get(config.TeleportProxy), "agent_version": p.agentVersion})
	return nil
}

func (p *Provisioner) checkCloudflare(ctx context.Context, r *pipeline.Run) error {
	if p.dns == nil {
		return nil
	}
	// A read proves the zone is reachable, the access check that the token
	// is active and may change records in it: a read-only token would
	// otherwise fail in phase 3, after the server is billed.
	zone := p.cfg.Get(config.CloudflareZoneID)
	if _, err := p.dns.FindA(ctx, p.cfg.Get(config.CloudflareDNSName)); err != nil {
		return fmt.Errorf("check Cloudflare zone %s: %w", zone, err)
	}
	proven, err := p.dns.CheckAccess(ctx)
	if err != nil {
		return fmt.Errorf("check Cloudflare zone %s (set cloudflare-api-token to a token with Zone / DNS / Edit): %w", zone, err)
	}
	if !proven {
		r.Warn("Cloudflare does not list the token's permissions in the zone: DNS edit could not be proven before ordering", map[string]any{"zone": zone})
	}
	// The proxmox topology's names are made from domain: outside the zone,
	// Cloudflare would create them under it (the zone's name appended).
	if zn, ok := p.dns.(interface {
		ZoneName(ctx context.Context) (string, error)
	}); ok && p.host != nil {
		name, err := zn.ZoneName(ctx)
		if err != nil {
			return err
		}
		d := strings.TrimSuffix(strings.ToLower(p.cfg.Get(config.Domain)), ".")
		if d != name && !strings.HasSuffix(d, "."+name) {
			return fail.UsageError(fmt.Errorf("domain %s is not in Cloudflare zone %s (%s): its records (%s) would land in the wrong place; set cloudflare-zone-id to the zone of %s, or domain to a name in %s",
				d, name, zone, strings.Join(ProxmoxDNSNames(d), ", "), d, name))
		}
	}
	return nil
}

// checkSecretStore proves that Infisical will take the cluster's
// credentials: an identity that may read the settings but not write under
// the cluster's path would otherwise fail in phase 4, after the servers are
// billed. The probe it writes is removed at once (infisical.CheckWrite).
func (p *Provisioner) checkSecretStore(ctx context.Context, r *pipeline.Run) error {
	if p.store == nil {
		return nil // credentials go to --secrets-out
	}
	path := p.secretsPath()
	probe := infisical.ProbeName()
	mayExist, err := p.store.CheckWrite(ctx, path, probe)
	if mayExist {
		// Its delete failed or the create's answer was lost: cleanup owes
		// its removal, as for anything the run created.
		r.Undo(pipeline.UndoStep{
			Resource: fmt.Sprintf("Infisical secrets %s in %s (phase 0's write check)", probe, path),
			Command:  fmt.Sprintf("infisical secrets delete %s --path %s --env %s", probe, path, p.cfg.Get(config.InfisicalEnvironment)),
			Do:       func(ctx context.Context) error { return p.store.Delete(ctx, path, []string{probe}) },
		})
	}
	if err != nil {
		if errors.Is(err, infisical.ErrNoWrite) {
			return fmt.Errorf("%w; give the identity (infisical-client-id) a project role that may create, edit and delete secrets and create folders under %s in environment %s (Infisical: Project Settings → Access Control → Roles), or keep the credentials in files with --secrets-out",
				err, path, p.cfg.Get(config.InfisicalEnvironment))
		}
		return err
	}
	r.Info("Infisical accepts the cluster's credentials", map[string]any{"path": path})
	return nil
}

// checkOperatorIP settles the firewall's source address before ordering:
// finding out in phase 4 that it cannot be detected would waste a server.
func (p *Provisioner) checkOperatorIP(ctx context.Context, r *pipeline.Run) error {
	a, err := p.operatorAddress(ctx, r)
	if err != nil {
		return err
	}
	p.operatorIP = a
	return nil
}

// phase0Error classes phase 0's failures: when every one of them is a
// service that kept failing transiently (an outage, not a setting), it says
// "service unavailable"; either way the exit code says nothing was created.
func phase0Error(errs []error) error {
	outage := true
	for _, err := range errs {
		if err == nil {
			continue
		}
		if transient, _ := retry.Classify(err); !transient {
			outage = false
		}
	}
	joined := errors.Join(errs...)
	if outage {
		return fail.Unavailable(joined)
	}
	return fail.UsageError(joined)
}

// githubProblems checks the proxmox topology's GitHub SSO settings: its
// Teleport has no other way for people to log in, and a team mapping that
// matches nobody would only show once someone tries.
func githubProblems(cfg *config.Config) config.Problems {
	var probs config.Problems
	for _, name := range []string{config.GitHubOrg, config.GitHubTeam, config.GitHubClientID, config.GitHubClientSecret} {
		if !cfg.IsSet(name) {
			probs = append(probs, config.Problem{Setting: name, Source: config.Unset,
				Message: "the proxmox topology's Teleport logs people in with GitHub SSO (an OAuth app whose callback is https://teleport.<domain>/v1/webapi/github/callback)"})
		}
	}
	if cfg.IsSet(config.GitHubTeam) && cfg.WellFormed(config.GitHubTeam) {
		if err := teleportvm.CheckGitHubTeam(cfg.Get(config.GitHubTeam)); err != nil {
			probs = append(probs, cfg.ProblemFor(config.GitHubTeam, err.Error()))
		}
	}
	return probs
}
