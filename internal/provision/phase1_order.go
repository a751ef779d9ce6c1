package provision

import (
	"context"
	"errors"
	"fmt"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/pivot"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
)

// orderServer is phase 1: one CreateServer call carrying the OS install and
// the cloud-init pivot; the undo that deletes the server is pushed the moment
// the API says it exists.
func (p *Provisioner) orderServer(ctx context.Context, r *pipeline.Run) error {
	keys := p.sshKeys // listed in phase 0, before any money is spent
	userData, err := pivot.Render(p.pivotOptions())
	if err != nil {
		return fmt.Errorf("render cloud-init user data: %w", err)
	}
	name := p.clusterName()
	srv, err := p.scw.CreateServer(ctx, scaleway.ServerSpec{
		Name:        name,
		Description: "Talos node of cluster " + name + ", managed by rawkode-cloud",
		OfferID:     p.cfg.Get(config.ScalewayOfferID),
		OSID:        p.cfg.Get(config.ScalewayOSID),
		Hostname:    name,
		SSHKeyIDs:   keys,
		UserData:    userData,
		Tags:        scaleway.ClusterTags(name),
	})
	if errors.Is(err, scaleway.ErrMaybeCreated) {
		// The order may have gone through even though the answer was lost:
		// find it by its tags so that undo can remove it.
		p.adoptOrphans(ctx, r)
	}
	if err != nil {
		return fmt.Errorf("order server: %w", err)
	}
	p.server = srv
	p.undoServer(r, *srv)
	r.Info("server ordered", map[string]any{"server_id": srv.ID, "offer": p.cfg.Get(config.ScalewayOfferID), "ssh_keys": len(keys)})
	return nil
}

// undoServer registers the deletion of a server right after it exists.
func (p *Provisioner) undoServer(r *pipeline.Run, srv scaleway.Server) {
	id := srv.ID
	r.Undo(pipeline.UndoStep{
		Resource: fmt.Sprintf("Scaleway server %s (%s)", id, srv.Zone),
		Command:  fmt.Sprintf("rawkode-cloud destroy --server-id %s --scaleway-zone %s", id, srv.Zone),
		Do: func(ctx context.Context) error {
			w := r.Wait("server "+id+" to be deleted", 0, p.cfg.Duration(config.ServerPollInterval))
			return p.scw.DeleteServer(ctx, id, w.Options())
		},
	})
}

// adoptOrphans pushes undo steps for servers of this cluster that a failed
// CreateServer may have created after all.
func (p *Provisioner) adoptOrphans(ctx context.Context, r *pipeline.Run) {
	found, err := p.scw.FindServers(context.WithoutCancel(ctx), scaleway.ClusterTags(p.clusterName())...)
	if err != nil {
		r.Warn("the order's answer was lost and the servers of this cluster could not be listed; check the Scaleway console", map[string]any{"error": err.Error()})
		return
	}
	for _, srv := range found {
		p.undoServer(r, srv)
	}
}

func (p *Provisioner) pivotOptions() pivot.Options {
	return pivot.Options{
		SchematicID:     p.cfg.Get(config.TalosSchematicID),
		TalosVersion:    p.cfg.Get(config.TalosVersion),
		ImageFactoryURL: p.cfg.Get(config.ImageFactoryURL),
		InstallDisk:     p.cfg.Get(config.TalosInstallDisk),
	}
}
