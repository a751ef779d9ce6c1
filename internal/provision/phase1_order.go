package provision

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
	// A tag only this order carries: if the API's answer is lost, the
	// server found by it is certainly ours, never an earlier cluster's of
	// the same name (which undo would otherwise delete).
	orderTag := "order=" + randomHex(6)
	spec := scaleway.ServerSpec{
		Name:        name,
		Description: "Talos node of cluster " + name + ", managed by rawkode-cloud",
		OfferID:     p.cfg.Get(config.ScalewayOfferID),
		OSID:        p.cfg.Get(config.ScalewayOSID),
		Hostname:    name,
		SSHKeyIDs:   keys,
		UserData:    userData,
		Tags:        append(scaleway.ClusterTags(name), orderTag),
	}
	var srv *scaleway.Server
	adopted := false
	for attempt := 1; ; attempt++ {
		srv, err = p.scw.CreateServer(ctx, spec)
		if err == nil || !errors.Is(err, scaleway.ErrMaybeCreated) {
			break
		}
		// The order may have gone through even though the answer was lost
		// (a 5xx, a timeout): look for it before deciding anything.
		found, ok := p.adoptOrphans(ctx, r, orderTag)
		if len(found) == 1 {
			srv, err, adopted = &found[0], nil, true
			r.Info("the order's answer was lost, but the server exists: continuing with it", map[string]any{"server_id": srv.ID})
			break
		}
		// Nothing was ordered (or, against all odds, more than one server
		// carries our tag: all are on the undo stack). Ordering again is
		// safe only when the look-up proved there is none.
		if !ok || len(found) > 1 || attempt >= maxOrderAttempts || ctx.Err() != nil {
			break
		}
		r.Warn("the order failed without a server being created; ordering again", map[string]any{"attempt": attempt, "error": err.Error()})
	}
	if err != nil {
		return fmt.Errorf("order server: %w", err)
	}
	p.server = srv
	if !adopted { // an adopted server's undo is already pushed
		p.undoServer(r, *srv)
	}
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

// maxOrderAttempts bounds re-ordering after answers that proved nothing
// was created.
const maxOrderAttempts = 3

// adoptOrphans pushes undo steps for the servers carrying this order's tag,
// which a failed CreateServer may have created after all. ok is false when
// they could not be listed: then nobody knows, and ordering again could
// buy a second server.
func (p *Provisioner) adoptOrphans(ctx context.Context, r *pipeline.Run, orderTag string) (found []scaleway.Server, ok bool) {
	found, err := p.scw.FindServers(context.WithoutCancel(ctx), scaleway.ToolTag, orderTag)
	if err != nil {
		r.Warn("the order's answer was lost and the servers of this cluster could not be listed; check the Scaleway console", map[string]any{"error": err.Error(), "tag": orderTag})
		return nil, false
	}
	for _, srv := range found {
		p.undoServer(r, srv)
	}
	return found, true
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

func (p *Provisioner) pivotOptions() pivot.Options {
	return pivot.Options{
		SchematicID:     p.cfg.Get(config.TalosSchematicID),
		TalosVersion:    p.cfg.Get(config.TalosVersion),
		ImageFactoryURL: p.cfg.Get(config.ImageFactoryURL),
		InstallDisk:     p.cfg.Get(config.TalosInstallDisk),
	}
}
