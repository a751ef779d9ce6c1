package provision

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

// verification is one thing that must hold before phase 6 locks the
// operator out. A failure leaves everything running for debugging (exit 3).
type verification struct {
	name string
	run  func(ctx context.Context, r *pipeline.Run) error
}

// verifications lists every check phase 6 runs, side by side, before the
// lockdown. Add a check here.
func (p *Provisioner) verifications() []verification {
	return []verification{
		{"Teleport lists the cluster's kube agent", p.verifyTeleport},
	}
}

// verify runs every verification and reports every failure at once.
func (p *Provisioner) verify(ctx context.Context, r *pipeline.Run) error {
	checks := p.verifications()
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.run(ctx, r)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// verifyTeleport waits until Teleport lists the cluster's kube agent: the
// way in that replaces the operator's openings.
func (p *Provisioner) verifyTeleport(ctx context.Context, r *pipeline.Run) error {
	name := p.clusterName()
	w := r.Wait("kube agent of "+name+" to register with Teleport", p.timeout(config.TeleportAgentTimeout), p.cfg.Duration(config.TeleportAgentPollInterval))
	wctx, cancel := w.Context(ctx)
	defer cancel()
	if err := p.tp.WaitKubeServer(wctx, name, w.Options()); err != nil {
		return fmt.Errorf("Teleport verification failed: %w", err)
	}
	w.Done()
	return nil
}
