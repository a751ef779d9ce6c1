package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	checks := []verification{
		{"Teleport lists the cluster's kube agent", p.verifyTeleport},
		{"every control plane is an etcd member", p.verifyEtcd},
		{"every node registered and Ready in Kubernetes", p.verifyNodes},
		{"Kubernetes CNI, CoreDNS and Flux", p.verifyKubernetes},
	}
	if p.host != nil {
		checks = append(checks, p.host.verifications()...)
	}
	return checks
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

// verifyTeleport waits until Teleport lists this run's kube agent (its run
// label, teleport.LabelRun): the way in that replaces the operator's openings.
func (p *Provisioner) verifyTeleport(ctx context.Context, r *pipeline.Run) error {
	name := p.clusterName()
	w := r.Wait("kube agent of "+name+" to register with Teleport", p.timeout(config.TeleportAgentTimeout), p.cfg.Duration(config.TeleportAgentPollInterval))
	wctx, cancel := w.Context(ctx)
	defer cancel()
	// Only this run's agent counts: a kube server of the same name may be
	// an earlier cluster's (kept until its heartbeat TTL runs out) or
	// another agent's, and locking down on its word would lock the operator
	// out of a cluster whose own agent never joined.
	// Meanwhile the join token is kept valid (token.go): an agent that
	// has not joined yet needs one. A renewal that fails ends the wait.
	kctx, stopKeeping := context.WithCancel(wctx)
	kept := make(chan error, 1)
	go func() {
		err := p.keepTokenValid(kctx, ctx, r, p.cfg.Duration(config.TeleportAgentPollInterval))
		if err != nil {
			cancel()
		}
		kept <- err
	}()
	err := p.tp.WaitKubeAgent(wctx, name, p.agentLabels(), w.Options())
	stopKeeping()
	if kerr := <-kept; kerr != nil {
		return fmt.Errorf("Teleport verification failed: %w", kerr)
	}
	if err != nil {
		return fmt.Errorf("Teleport verification failed: %w", err)
	}
	w.Done()
	return nil
}

// verifyEtcd asks every control plane for the etcd member list and expects
// every control plane in it: a node whose etcd never joined would leave the
// cluster one failure further from losing its quorum than it looks.
func (p *Provisioner) verifyEtcd(ctx context.Context, _ *pipeline.Run) error {
	cps := p.controlPlanes()
	return eachNode(cps, func(n *Node) error {
		members, err := p.talos.EtcdMembers(ctx, n.IP(), p.talosconfig)
		if err != nil {
			return fmt.Errorf("etcd verification failed: %w", err)
		}
		var missing []string
		for _, cp := range cps {
			if !slices.Contains(members, cp.Name) {
				missing = append(missing, cp.Name)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("etcd verification failed: %s lists members %s, missing %s",
				n.Name, strings.Join(members, ", "), strings.Join(missing, ", "))
		}
		return nil
	})
}
