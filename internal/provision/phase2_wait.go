package provision

import (
	"context"

	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

// waitForTalos is phase 2: every machine delivered and installed, and Talos
// answering in maintenance mode on it (the topology's Reach; metal.go).
//
// Nothing the CLI can do early waits for the hardware: the DNS records need
// only the addresses, and the join token and the configs only the end of
// the installs, so both start now and run the moment the topology says.
func (p *Provisioner) waitForTalos(ctx context.Context, r *pipeline.Run) error {
	p.ahead(r, p.dnsRecords, p.prep)
	return p.topo.Reach(ctx, r, p.nodes)
}
