package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"

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

// Destroyer removes what provision created. Every step treats "already gone"
// as success, so running it twice is safe.
type Destroyer struct {
	opts    DestroyOptions
	cfg     *config.Config
	scw     Servers
	dns     DNS
	tp      Teleport
	store   SecretStore
	servers []scaleway.Server
	cluster string
	removed []string
}

// NewDestroyer prepares a destroy run.
func NewDestroyer(opts DestroyOptions) *Destroyer {
	if opts.AddSecret == nil {
		opts.AddSecret = func(...string) {}
	}
	return &Destroyer{opts: opts, cfg: opts.Config, cluster: opts.Config.Get(config.ClusterName)}
}

// Phases lists destroy's steps.
func (d *Destroyer) Phases() []pipeline.Phase {
	return []pipeline.Phase{
		pipeline.PhaseFunc("Find resources", d.find),
		pipeline.PhaseFunc("Delete servers", d.deleteServers),
		pipeline.PhaseFunc("Delete DNS record", d.deleteDNS),
		pipeline.PhaseFunc("Delete Teleport tokens", d.deleteTokens),
		pipeline.PhaseFunc("Delete stored secrets", d.deleteSecrets),
	}
}

// Removed lists what this run removed (empty: everything was already gone).
func (d *Destroyer) Removed() []string { return d.removed }

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
	if d.cfg.IsSet(config.TeleportProxy) && d.cluster != "" {
		if d.tp, err = f.Teleport(ctx, d.cfg); err != nil {
			return fmt.Errorf("connect to Teleport: %w", err)
		}
	}
	if id := d.opts.ServerID; id != "" {
		srv, err := d.scw.GetServer(ctx, id)
		switch {
		case errors.Is(err, scaleway.ErrNotFound):
			r.Info("server "+id+" is already gone", nil)
		case err != nil:
			return fmt.Errorf("look up server %s: %w", id, err)
		default:
			d.servers = []scaleway.Server{*srv}
			// The server's own tag says which cluster it belongs to; tokens
			// and secrets are looked up under that name.
			if tagged := clusterFromTags(srv.Tags); tagged != "" && tagged != d.cluster {
				if d.cluster != "" {
					r.Warn(fmt.Sprintf("server %s belongs to cluster %s, not %s: using %s", id, tagged, d.cluster, tagged), nil)
				}
				d.cluster = tagged
			}
		}
	} else {
		d.servers, err = d.scw.FindServers(ctx, scaleway.ClusterTags(d.cluster)...)
		if err != nil {
			return fmt.Errorf("find servers of cluster %s: %w", d.cluster, err)
		}
	}
	ids := make([]string, len(d.servers))
	for i, s := range d.servers {
		ids[i] = s.ID
	}
	r.Info(fmt.Sprintf("found %d server(s)", len(d.servers)), map[string]any{"servers": ids, "cluster": d.cluster})
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
	var errs []error
	for _, s := range d.servers {
		w := r.Wait("server "+s.ID+" to be deleted", d.cfg.Duration(config.ServerTimeout), d.cfg.Duration(config.ServerPollInterval))
		wctx, cancel := w.Context(ctx)
		err := d.scw.DeleteServer(wctx, s.ID, w.Options())
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("delete server %s: %w", s.ID, err))
			continue
		}
		w.Done()
		d.removed = append(d.removed, "server "+s.ID)
	}
	return incomplete(errors.Join(errs...))
}

func (d *Destroyer) deleteDNS(ctx context.Context, r *pipeline.Run) error {
	if d.dns == nil {
		r.Skip("Cloudflare is not configured")
		return nil
	}
	name := d.cfg.Get(config.CloudflareDNSName)
	ips := map[string]bool{}
	for _, s := range d.servers {
		if s.IPv4 != "" {
			ips[s.IPv4] = true
		}
	}
	recs, err := d.dns.FindA(ctx, name)
	if err != nil {
		return incomplete(fmt.Errorf("look up DNS record %s: %w", name, err))
	}
	var errs []error
	n := 0
	for _, rec := range recs {
		// Only a record that points at a server we removed is ours to delete.
		if !ips[rec.Content] {
			continue
		}
		if err := d.dns.DeleteRecord(ctx, rec.ID); err != nil {
			errs = append(errs, fmt.Errorf("delete DNS record %s → %s: %w", name, rec.Content, err))
			continue
		}
		n++
		d.removed = append(d.removed, fmt.Sprintf("DNS record %s → %s", name, rec.Content))
	}
	if n == 0 && len(errs) == 0 {
		r.Skip("no record of " + name + " points at this cluster's servers")
	}
	return incomplete(errors.Join(errs...))
}

func (d *Destroyer) deleteTokens(ctx context.Context, r *pipeline.Run) error {
	if d.tp == nil {
		r.Skip("Teleport or cluster name not configured")
		return nil
	}
	toks, err := d.tp.ListKubeTokens(ctx, d.cluster)
	if err != nil {
		return incomplete(fmt.Errorf("list Teleport tokens of %s: %w", d.cluster, err))
	}
	if len(toks) == 0 {
		r.Skip("no outstanding join token")
		return nil
	}
	var errs []error
	for _, t := range toks {
		if err := d.tp.DeleteToken(ctx, t.Name); err != nil {
			errs = append(errs, fmt.Errorf("delete Teleport token %s: %w", teleport.Redact(t.Name), err))
			continue
		}
		d.removed = append(d.removed, "Teleport token "+teleport.Redact(t.Name))
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
	var present []string
	for _, n := range []string{SecretTalosBundle, SecretTalosconfig, SecretKubeconfig} {
		_, err := d.store.Get(ctx, path, n)
		switch {
		case err == nil:
			present = append(present, n)
		case !errors.Is(err, infisical.ErrNotFound):
			return incomplete(fmt.Errorf("look up secrets at %s: %w", path, err))
		}
	}
	if len(present) == 0 {
		r.Skip("no secrets stored at " + path)
		return nil
	}
	if err := d.store.Delete(ctx, path, present); err != nil {
		return incomplete(fmt.Errorf("delete secrets at %s: %w", path, err))
	}
	d.removed = append(d.removed, fmt.Sprintf("Infisical secrets %s at %s", strings.Join(present, ", "), path))
	return nil
}

// incomplete marks a failed removal: something may remain (exit 4).
func incomplete(err error) error { return fail.WithCode(err, fail.Incomplete) }
