package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/rawkode/rawkode-cloud/internal/cloudflare"
	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/infisical"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
	"github.com/rawkode/rawkode-cloud/internal/teleport"
)

// DestroyOptions say what to remove.
type DestroyOptions struct {
	Config        *config.Config
	Factory       Factory
	ServerID      string // one server; otherwise every server tagged with the cluster name
	DeleteSecrets bool
	AddSecret     func(...string)
}

// Destroyer removes what provision created. It first finds everything
// (Find, nothing is touched), so that the user can be shown what would go
// and asked; then its phases remove exactly that. Every step treats
// "already gone" as success, so running it twice is safe.
type Destroyer struct {
	opts    DestroyOptions
	cfg     *config.Config
	scw     Servers
	dns     DNS
	tp      Teleport
	store   SecretStore
	cluster string

	// Found by Find.
	servers  []scaleway.Server
	records  []cloudflare.Record
	tokens   []teleport.Token
	secrets  []string // names stored at SecretsPath(cluster), with --delete-secrets
	searched []string // zones looked in for --server-id

	mu        sync.Mutex
	removed   []string
	remaining []pipeline.UndoStep
}

// NewDestroyer prepares a destroy run.
func NewDestroyer(opts DestroyOptions) *Destroyer {
	if opts.AddSecret == nil {
		opts.AddSecret = func(...string) {}
	}
	return &Destroyer{opts: opts, cfg: opts.Config, cluster: opts.Config.Get(config.ClusterName)}
}

// FindPhases finds what would be destroyed, touching nothing.
func (d *Destroyer) FindPhases() []pipeline.Phase {
	return []pipeline.Phase{pipeline.PhaseFunc("Find resources", d.find)}
}

// Phases remove what FindPhases found.
func (d *Destroyer) Phases() []pipeline.Phase {
	return []pipeline.Phase{
		pipeline.PhaseFunc("Delete servers", d.deleteServers),
		pipeline.PhaseFunc("Delete DNS record", d.deleteDNS),
		pipeline.PhaseFunc("Delete Teleport tokens", d.deleteTokens),
		pipeline.PhaseFunc("Delete stored secrets", d.deleteSecrets),
	}
}

// Found lists what the phases would remove, one line each.
func (d *Destroyer) Found() []string {
	var out []string
	for _, s := range d.servers {
		line := fmt.Sprintf("Scaleway server %s (%s, zone %s", s.ID, s.Name, s.Zone)
		if s.IPv4 != "" {
			line += ", " + s.IPv4
		}
		out = append(out, line+")")
	}
	for _, r := range d.records {
		out = append(out, fmt.Sprintf("Cloudflare A record %s → %s", r.Name, r.Content))
	}
	for _, t := range d.tokens {
		out = append(out, "Teleport join token "+teleport.Redact(t.Name))
	}
	if len(d.secrets) > 0 {
		out = append(out, fmt.Sprintf("Infisical secrets %s at %s", strings.Join(d.secrets, ", "), SecretsPath(d.cluster)))
	}
	return out
}

// Cluster is the cluster the found resources belong to (a server's own tag
// wins over the cluster-name setting).
func (d *Destroyer) Cluster() string { return d.cluster }

// Searched lists the zones --server-id was looked for in.
func (d *Destroyer) Searched() []string { return d.searched }

// Removed lists what this run removed (empty: everything was already gone).
func (d *Destroyer) Removed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.removed...)
}

// Remaining lists what could not be removed, each with the command that
// removes it.
func (d *Destroyer) Remaining() []pipeline.UndoStep {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]pipeline.UndoStep(nil), d.remaining...)
}

func (d *Destroyer) done(what string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.removed = append(d.removed, what)
}

func (d *Destroyer) left(resource, command string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.remaining = append(d.remaining, pipeline.UndoStep{Resource: resource, Command: command})
}

// Close releases connections.
func (d *Destroyer) Close() {
	if d.store != nil {
		d.store.Close()
	}
	if d.tp != nil {
		_ = d.tp.Close()
	}
}

func (d *Destroyer) find(ctx context.Context, r *pipeline.Run) error {
	f := d.opts.Factory
	store, _, err := FillFromInfisical(ctx, f, d.cfg, d.opts.AddSecret)
	if err != nil {
		return err
	}
	d.store = store
	req := config.Requirements{Required: []string{config.ScalewayAccessKey, config.ScalewaySecretKey, config.ScalewayProjectID}}
	if err := d.cfg.Validate(req); err != nil {
		return fail.UsageError(err)
	}
	if d.scw, err = f.Scaleway(d.cfg); err != nil {
		return fail.UsageError(err)
	}
	if d.dns, err = f.Cloudflare(d.cfg); err != nil {
		return fail.UsageError(err)
	}
	if err := d.findServers(ctx, r); err != nil {
		return err
	}
	if d.cfg.IsSet(config.TeleportProxy) && d.cluster != "" {
		if d.tp, err = f.Teleport(ctx, d.cfg); err != nil {
			return fmt.Errorf("connect to Teleport: %w", err)
		}
		if d.tokens, err = d.tp.ListKubeTokens(ctx, d.cluster); err != nil {
			return fmt.Errorf("list Teleport tokens of %s: %w", d.cluster, err)
		}
	}
	if err := d.findRecords(ctx); err != nil {
		return err
	}
	if err := d.findSecrets(ctx); err != nil {
		return err
	}
	ids := make([]string, len(d.servers))
	for i, s := range d.servers {
		ids[i] = s.ID
	}
	r.Info(fmt.Sprintf("found %d server(s)", len(d.servers)), map[string]any{"servers": ids, "cluster": d.cluster})
	return nil
}

func (d *Destroyer) findServers(ctx context.Context, r *pipeline.Run) error {
	id := d.opts.ServerID
	if id == "" {
		servers, err := d.scw.FindServers(ctx, scaleway.ClusterTags(d.cluster)...)
		if err != nil {
			return fmt.Errorf("find servers of cluster %s: %w", d.cluster, err)
		}
		d.servers = servers
		return nil
	}
	zone := d.cfg.Get(config.ScalewayZone)
	d.searched = []string{zone}
	srv, err := d.scw.GetServer(ctx, id)
	switch {
	case errors.Is(err, scaleway.ErrNotFound):
		return d.searchOtherZones(ctx, r, id, zone)
	case err != nil:
		return fmt.Errorf("look up server %s in %s: %w", id, zone, err)
	}
	d.servers = []scaleway.Server{*srv}
	// The server's own tag says which cluster it belongs to; tokens and
	// secrets are looked up under that name.
	if tagged := clusterFromTags(srv.Tags); tagged != "" && tagged != d.cluster {
		if d.cluster != "" {
			r.Warn(fmt.Sprintf("server %s belongs to cluster %s, not %s: using %s", id, tagged, d.cluster, tagged), nil)
		}
		d.cluster = tagged
	}
	return nil
}

// searchOtherZones looks for a server that is not where the settings say.
// A well-formed ID that is not found is most often a server in another zone,
// which keeps billing: "already gone" is only true when it is nowhere.
func (d *Destroyer) searchOtherZones(ctx context.Context, r *pipeline.Run, id, zone string) error {
	var others []string
	for _, z := range config.ElasticMetalZones() {
		if z != zone {
			others = append(others, z)
		}
	}
	type answer struct {
		zone string
		srv  *scaleway.Server
		err  error
	}
	answers := make([]answer, len(others))
	var wg sync.WaitGroup
	for i, z := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i].zone = z
			cfg := d.cfg.Clone()
			cfg.Set(config.ScalewayZone, z, config.FromDefault, "")
			c, err := d.opts.Factory.Scaleway(cfg)
			if err != nil {
				answers[i].err = err
				return
			}
			answers[i].srv, answers[i].err = c.GetServer(ctx, id)
		}()
	}
	wg.Wait()
	var failed []string
	for _, a := range answers {
		switch {
		case a.err == nil:
			return fail.WithCode(fmt.Errorf("server %s is not in zone %s but in %s, where it keeps running and billing; destroy it there with: rawkode-cloud destroy --server-id %s --scaleway-zone %s",
				id, zone, a.zone, id, a.zone), fail.Failed)
		case errors.Is(a.err, scaleway.ErrNotFound):
			d.searched = append(d.searched, a.zone)
		default:
			failed = append(failed, fmt.Sprintf("%s (%v)", a.zone, a.err))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("server %s is not in zone %s, and the other zones could not all be searched: %s", id, zone, strings.Join(failed, "; "))
	}
	r.Info(fmt.Sprintf("server %s exists in no Elastic Metal zone (searched %s): already gone", id, strings.Join(d.searched, ", ")), nil)
	return nil
}

// findRecords finds the A records of the cluster's DNS names that point
// at the servers found: only those are ours to delete. The names are the
// endpoint name and the proxmox topology's public names (ProxmoxDNSNames),
// which point at its host, for the configured domain and the domain the
// host carries as a tag.
func (d *Destroyer) findRecords(ctx context.Context) error {
	if d.dns == nil || len(d.servers) == 0 {
		return nil
	}
	names := []string{d.cfg.Get(config.CloudflareDNSName)}
	domains := map[string]bool{}
	if dom := strings.TrimSuffix(d.cfg.Get(config.Domain), "."); dom != "" {
		domains[dom] = true
		names = append(names, ProxmoxDNSNames(dom)...)
	}
	ips := map[string]bool{}
	for _, s := range d.servers {
		if s.IPv4 != "" {
			ips[s.IPv4] = true
		}
		// A proxmox host carries its domain as a tag: its public names are
		// found without --domain.
		for _, t := range s.Tags {
			if dom, ok := strings.CutPrefix(t, "domain="); ok && dom != "" && !domains[dom] {
				domains[dom] = true
				names = append(names, ProxmoxDNSNames(dom)...)
			}
		}
	}
	for _, name := range names {
		if name == "" {
			continue
		}
		recs, err := d.dns.FindA(ctx, name)
		if err != nil {
			return fmt.Errorf("look up DNS record %s: %w", name, err)
		}
		for _, rec := range recs {
			if ips[rec.Content] {
				d.records = append(d.records, rec)
			}
		}
	}
	return nil
}

func (d *Destroyer) findSecrets(ctx context.Context) error {
	if !d.opts.DeleteSecrets || d.store == nil || d.cluster == "" {
		return nil
	}
	path := SecretsPath(d.cluster)
	for _, n := range []string{SecretTalosBundle, SecretTalosconfig, SecretKubeconfig, SecretProxmoxToken, SecretProxmoxRoot, SecretStorageSSHKey} {
		_, err := d.store.Get(ctx, path, n)
		switch {
		case err == nil:
			d.secrets = append(d.secrets, n)
		case !errors.Is(err, infisical.ErrNotFound):
			return fmt.Errorf("look up secrets at %s: %w", path, err)
		}
	}
	return nil
}

func clusterFromTags(tags []string) string {
	for _, t := range tags {
		if len(t) > len("cluster=") && t[:len("cluster=")] == "cluster=" {
			return t[len("cluster="):]
		}
	}
	return ""
}

func (d *Destroyer) deleteServers(ctx context.Context, r *pipeline.Run) error {
	if len(d.servers) == 0 {
		r.Skip("no server to delete")
		return nil
	}
	// Side by side, each still waited on until Scaleway no longer knows it:
	// a cluster's servers take as long to go as one does. Bounded, so that a
	// large cluster does not meet the API's rate limit all at once.
	errs := make([]error, len(d.servers))
	sem := make(chan struct{}, maxParallelDeletes)
	var wg sync.WaitGroup
	for i, s := range d.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				errs[i] = fmt.Errorf("delete server %s: %w", s.ID, ctx.Err())
				d.left(fmt.Sprintf("Scaleway server %s (%s)", s.ID, s.Zone), fmt.Sprintf("rawkode-cloud destroy --server-id %s --scaleway-zone %s", s.ID, s.Zone))
				return
			}
			w := r.Wait("server "+s.ID+" to be deleted", d.cfg.Duration(config.ServerTimeout), d.cfg.Duration(config.ServerPollInterval))
			wctx, cancel := w.Context(ctx)
			defer cancel()
			if err := d.scw.DeleteServer(wctx, s.ID, w.Options()); err != nil {
				errs[i] = fmt.Errorf("delete server %s: %w", s.ID, err)
				d.left(fmt.Sprintf("Scaleway server %s (%s)", s.ID, s.Zone), fmt.Sprintf("rawkode-cloud destroy --server-id %s --scaleway-zone %s", s.ID, s.Zone))
				return
			}
			w.Done()
			d.done("server " + s.ID)
		}()
	}
	wg.Wait()
	return incomplete(errors.Join(errs...))
}

// maxParallelDeletes bounds the servers deleted at once: each polls until
// its server is gone.
const maxParallelDeletes = 8

func (d *Destroyer) deleteDNS(ctx context.Context, r *pipeline.Run) error {
	if d.dns == nil {
		r.Skip("Cloudflare is not configured")
		return nil
	}
	if len(d.records) == 0 {
		r.Skip("no record of " + d.cfg.Get(config.CloudflareDNSName) + " points at this cluster's servers")
		return nil
	}
	var errs []error
	for _, rec := range d.records {
		name := rec.Name
		if err := d.dns.DeleteRecord(ctx, rec.ID); err != nil {
			errs = append(errs, fmt.Errorf("delete DNS record %s → %s: %w", name, rec.Content, err))
			d.left(fmt.Sprintf("Cloudflare A record %s → %s", name, rec.Content), revertCommand(cloudflare.Change{RecordID: rec.ID, Created: true}, name, d.cfg.Get(config.CloudflareZoneID)))
			continue
		}
		d.done(fmt.Sprintf("DNS record %s → %s", name, rec.Content))
	}
	return incomplete(errors.Join(errs...))
}

func (d *Destroyer) deleteTokens(ctx context.Context, r *pipeline.Run) error {
	if d.tp == nil {
		r.Skip("Teleport or cluster name not configured")
		return nil
	}
	if len(d.tokens) == 0 {
		r.Skip("no outstanding join token")
		return nil
	}
	var errs []error
	for _, t := range d.tokens {
		if err := d.tp.DeleteToken(ctx, t.Name); err != nil {
			errs = append(errs, fmt.Errorf("delete Teleport token %s: %w", teleport.Redact(t.Name), err))
			d.left("Teleport join token "+teleport.Redact(t.Name), fmt.Sprintf("tctl tokens rm <token %s> (it expires by itself at %s)", teleport.Redact(t.Name), t.Expires.UTC().Format("15:04:05Z")))
			continue
		}
		d.done("Teleport token " + teleport.Redact(t.Name))
	}
	return incomplete(errors.Join(errs...))
}

func (d *Destroyer) deleteSecrets(ctx context.Context, r *pipeline.Run) error {
	if !d.opts.DeleteSecrets {
		r.Skip("stored secrets kept (use --delete-secrets to remove them)")
		return nil
	}
	if d.store == nil {
		r.Skip("Infisical is not configured")
		return nil
	}
	path := SecretsPath(d.cluster)
	if len(d.secrets) == 0 {
		r.Skip("no secrets stored at " + path)
		return nil
	}
	if err := d.store.Delete(ctx, path, d.secrets); err != nil {
		d.left(fmt.Sprintf("Infisical secrets %s at %s", strings.Join(d.secrets, ", "), path),
			fmt.Sprintf("infisical secrets delete %s --path %s --env %s", strings.Join(d.secrets, " "), path, d.cfg.Get(config.InfisicalEnvironment)))
		return incomplete(fmt.Errorf("delete secrets at %s: %w", path, err))
	}
	d.done(fmt.Sprintf("Infisical secrets %s at %s", strings.Join(d.secrets, ", "), path))
	return nil
}

// incomplete marks a failed removal: something may remain (exit 4).
func incomplete(err error) error { return fail.WithCode(err, fail.Incomplete) }
