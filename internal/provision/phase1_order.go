package provision

import (
	"context"

	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

// orderServers is phase 1: every node's machine is ordered at once, by the
// topology (metal.go: one CreateServer per node carrying the OS install and
// the cloud-init pivot). Each machine's undo is pushed the moment the
// provider says it exists.
func (p *Provisioner) orderServers(ctx context.Context, r *pipeline.Run) error {
	return p.topo.Create(ctx, r, p.nodes)
}
