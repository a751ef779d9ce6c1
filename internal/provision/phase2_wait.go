package provision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

// waitForTalos is phase 2: the server must be delivered AND its OS install
// completed (Scaleway says "ready" long before the install even starts), and
// the pivot has to bring Talos up in maintenance mode.
//
// The node answering in maintenance mode is the event that matters, so it is
// probed directly (a TLS dial that costs the API nothing) alongside the
// Scaleway status poll, which mainly catches install errors. The public IP
// is known long before the install ends, so the DNS record, the join token
// and the machine config are prepared in the background meanwhile.
func (p *Provisioner) waitForTalos(ctx context.Context, r *pipeline.Run) error {
	id := p.server.ID
	serverTimeout := p.timeout(config.ServerTimeout)
	pollEvery := p.cfg.Duration(config.ServerPollInterval)
	sctx, cancel := context.WithTimeout(ctx, serverTimeout)
	defer cancel()

	w := r.Wait("public IPv4 of server "+id, serverTimeout, pollEvery)
	srv, err := p.scw.WaitIPv4(sctx, id, w.Options())
	if err != nil {
		return fmt.Errorf("wait for server %s: %w", id, err)
	}
	w.Done()
	p.publicIP = srv.IPv4
	r.Info("public IPv4 assigned", map[string]any{"server_id": id, "ip": srv.IPv4})
	p.dnsTask = p.spawn(r, func(ctx context.Context) error { return p.upsertDNS(ctx, r) })

	// Scaleway status poll, in the background: its end (install completed)
	// is when the join token can be minted with its TTL still covering the
	// pivot, the reboot and the agent's start.
	w = r.Wait("server "+id+" delivery and OS install", serverTimeout, pollEvery)
	ready := p.spawn(r, func(context.Context) error {
		s, err := p.scw.WaitReady(sctx, id, w.Options())
		if err != nil {
			return err
		}
		w.Done()
		p.server = s
		if !p.opts.Sequential {
			p.startPrep(r)
		}
		return nil
	})

	// Probe slowly while the install runs (Ubuntu does not serve :50000
	// anyway), quickly once it completed and the pivot can finish any moment.
	mw := r.Wait("Talos maintenance mode on "+srv.IPv4, serverTimeout+p.timeout(config.TalosMaintenanceTimeout), p.cfg.Duration(config.TalosMaintenanceInterval))
	probe := func(ctx context.Context, every time.Duration) error {
		opts := mw.Options()
		opts.Interval = every
		return p.talos.WaitMaintenance(ctx, srv.IPv4, opts)
	}
	slow, stopSlow := context.WithCancel(sctx)
	defer stopSlow()
	maint := make(chan error, 1)
	go func() { maint <- probe(slow, pollEvery) }()

	select {
	case err := <-maint:
		if err == nil {
			mw.Done()
			// Talos is up, so the install is over whatever the API says yet.
			cancel()
			_ = ready.Wait(context.Background())
			if p.prepTask == nil && !p.opts.Sequential {
				p.startPrep(r)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The probe failed for good (or the server timeout passed): stop the
		// status poll and prefer its error, which names an install failure.
		cancel()
		if rerr := ready.Wait(context.Background()); rerr != nil && !errors.Is(rerr, context.Canceled) {
			return fmt.Errorf("wait for server %s: %w", id, rerr)
		}
		return err
	case <-waitDone(ctx, ready):
		stopSlow()
		<-maint
		if err := ready.Wait(ctx); err != nil {
			return fmt.Errorf("wait for server %s: %w", id, err)
		}
	}

	// Installed: now the pivot runs, bounded by the maintenance timeout.
	mctx, mcancel := context.WithTimeout(ctx, p.timeout(config.TalosMaintenanceTimeout))
	defer mcancel()
	if err := probe(mctx, p.cfg.Duration(config.TalosMaintenanceInterval)); err != nil {
		return err
	}
	mw.Done()
	return nil
}

// waitDone is closed when the task ends (or ctx does).
func waitDone(ctx context.Context, t *pipeline.Task) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		_ = t.Wait(ctx)
		close(ch)
	}()
	return ch
}
