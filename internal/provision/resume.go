package provision

import (
	"context"
	"fmt"
	"strings"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
	"github.com/rawkode/rawkode-cloud/internal/teleport"
)

// ResumeFrom turns a provisioning into the continuation of a run that left
// its cluster behind on purpose (exit 3, or --keep-on-failure): its servers
// are found by their tags and its secrets bundle in the secret store. The
// servers are not ordered again and no undo deletes them; what is redone
// is idempotent (the DNS record), made anew (the join token, which may
// have expired, and the configs carrying it, applied without a reboot), or
// found already done (the etcd bootstrap answers AlreadyExists). Then the
// Teleport verification and the lockdown, as in any run.
type ResumeFrom struct {
	Bundle  []byte
	Servers []scaleway.Server
}

// TopologyProxmoxTag marks the Proxmox VE host of a proxmox-topology
// cluster among the cluster's servers.
const TopologyProxmoxTag = "topology=" + config.TopologyProxmox

// ResumeProxmoxRefused says why a proxmox-topology cluster cannot be
// resumed and what to do instead. A resume adopts servers that run Talos;
// a proxmox run leaves a Proxmox VE host whose VMs, API token, firewall
// rules and Teleport VM (reached only with a one-hour provisioner identity
// that is shredded when read) a resume would have to adopt, and it does
// not: continuing with the metal steps would treat the host as a Talos
// node. Refused before anything is changed (exit 2).
func ResumeProxmoxRefused(cluster string) error {
	return fail.UsageError(fmt.Errorf("provision --resume cannot continue cluster %s: it is of the proxmox topology, and resume adopts only the metal topology's servers (not a Proxmox host, its VMs and its Teleport VM); nothing was changed. Remove what the run left with 'rawkode-cloud destroy --cluster-name %s --yes --delete-secrets' and run 'rawkode-cloud provision --topology proxmox --cluster-name %s' again",
		cluster, cluster, cluster))
}

// reusedBundle is the stored bundle a rebuild or a resume starts from.
func (p *Provisioner) reusedBundle() []byte {
	switch {
	case p.opts.Rebuild != nil:
		return p.opts.Rebuild.Bundle
	case p.opts.Resume != nil:
		return p.opts.Resume.Bundle
	}
	return nil
}

// resumed is the topology of a resumed run: the machines exist already.
type resumed struct {
	servers map[string]scaleway.Server // by name
}

func newResumed(servers []scaleway.Server) *resumed {
	t := &resumed{servers: map[string]scaleway.Server{}}
	for _, s := range servers {
		t.servers[s.Name] = s
	}
	return t
}

// Check wants a server for every node, delivered, installed and addressed.
func (t *resumed) Check(_ context.Context, r *pipeline.Run, nodes []*Node) error {
	var missing []string
	for _, n := range nodes {
		s, ok := t.servers[n.Name]
		if !ok || s.IPv4 == "" || s.Status != "ready" || s.InstallStatus != "completed" {
			missing = append(missing, n.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("cannot resume: no ready, installed server for %s (a run that stopped before its servers were installed cannot be resumed; destroy it and provision again)",
			strings.Join(missing, ", "))
	}
	r.Info(fmt.Sprintf("resuming with %d existing server(s)", len(nodes)), nil)
	return nil
}

// Create adopts the existing servers. No undo: they predate this run, and
// a failed resume leaves them as it found them.
func (t *resumed) Create(_ context.Context, r *pipeline.Run, nodes []*Node) error {
	for _, n := range nodes {
		s := t.servers[n.Name]
		n.Machine = Machine{ID: s.ID, Zone: s.Zone}
		r.Info("server exists: not ordered again", map[string]any{"server_id": s.ID, "node": n.Name})
	}
	return nil
}

// Reach knows the addresses; the nodes run their configs already, so
// there is no maintenance mode to wait for.
func (t *resumed) Reach(_ context.Context, _ *pipeline.Run, nodes []*Node) error {
	for _, n := range nodes {
		n.Address.Keep(t.servers[n.Name].IPv4)
		n.Installed.Keep(struct{}{})
	}
	return nil
}

// dropStaleTokens deletes the join tokens the interrupted run minted: the
// resumed run hands the nodes a new one, and an unused token is a secret
// lying around until it expires. A failure only warns: they expire anyway.
func (p *Provisioner) dropStaleTokens(ctx context.Context, r *pipeline.Run) {
	toks, err := p.tp.ListKubeTokens(ctx, p.clusterName())
	if err != nil {
		r.Warn("could not list the interrupted run's join tokens; they expire by themselves", map[string]any{"error": err.Error()})
		return
	}
	for _, t := range toks {
		if err := p.tp.DeleteToken(ctx, t.Name); err != nil {
			r.Warn("could not delete a join token of the interrupted run; it expires by itself", map[string]any{"error": err.Error()})
			continue
		}
		r.Info("deleted the interrupted run's join token", map[string]any{"token": teleport.Redact(t.Name)})
	}
}
