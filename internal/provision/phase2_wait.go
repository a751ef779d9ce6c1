package provision

import (
	"context"
	"fmt"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

// waitForTalos is phase 2: the server must be delivered AND its OS install
// completed (Scaleway says "ready" long before the install even starts), then
// the pivot has to bring Talos up in maintenance mode.
func (p *Provisioner) waitForTalos(ctx context.Context, r *pipeline.Run) error {
	id := p.server.ID
	w := r.Wait("server "+id+" delivery and OS install", p.timeout(config.ServerTimeout), p.cfg.Duration(config.ServerPollInterval))
	wctx, cancel := w.Context(ctx)
	srv, err := p.scw.WaitReady(wctx, id, w.Options())
	cancel()
	if err != nil {
		return fmt.Errorf("wait for server %s: %w", id, err)
	}
	w.Done()
	p.server = srv
	if srv.IPv4 == "" {
		return fmt.Errorf("server %s is ready but has no public IPv4", id)
	}
	p.publicIP = srv.IPv4
	r.Info("server delivered", map[string]any{"server_id": id, "ip": srv.IPv4})

	w = r.Wait("Talos maintenance mode on "+srv.IPv4, p.timeout(config.TalosMaintenanceTimeout), p.cfg.Duration(config.TalosMaintenanceInterval))
	wctx, cancel = w.Context(ctx)
	defer cancel()
	if err := p.talos.WaitMaintenance(wctx, srv.IPv4, w.Options()); err != nil {
		return fmt.Errorf("wait for Talos maintenance mode on %s: %w", srv.IPv4, err)
	}
	w.Done()
	return nil
}
