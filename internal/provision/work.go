package provision

import (
	"context"
	"fmt"

	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"

	"github.com/rawkode/rawkode-cloud/internal/cloudflare"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

// defineWork declares the work that may run ahead of its phase: what each
// item needs, what it produces, who starts it early and which phase
// collects it.
//
//	work          needs                                  produces                     started    collected
//	bundle        -                                      Talos PKI                    phase 0    phase 4
//	dnsRecords    every control plane's Address          A records (undo: put back)   phase 2    phase 3
//	prep          every node Installed, bundle, Address  join token, node configs,    phase 2    phase 4
//	                                                     credentials stored
//	kubeconfig    etcd bootstrapped, services healthy    kubeconfig stored            phase 5    phase 6
func (p *Provisioner) defineWork() {
	p.bundle = &pipeline.Work[*secrets.Bundle]{Name: "Talos secrets bundle", Do: p.generateSecrets}
	p.dnsRecords = &pipeline.Work[[]cloudflare.Change]{Name: "DNS records", Do: p.upsertDNS}
	p.prep = &pipeline.Work[struct{}]{Name: "join token and node configs", Do: p.prepare}
	p.kubeconfig = &pipeline.Work[struct{}]{Name: "kubeconfig", Do: p.fetchKubeconfig}
}

// addresses waits until every one of nodes has its address.
func addresses(ctx context.Context, nodes []*Node) ([]string, error) {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		ip, err := n.Address.Get(ctx)
		if err != nil {
			return nil, fmt.Errorf("address of node %s: %w", n.Name, err)
		}
		out[i] = ip
	}
	return out, nil
}
