package provision

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

// Topology is how machines come to exist and how the operator reaches them:
// the only part of a run that differs between Elastic Metal servers
// (metal.go) and, say, VMs on a host of our own. Everything else (secrets,
// DNS, Talos configs, bootstrap, verification, lockdown) is shared and only
// sees Nodes.
type Topology interface {
	// Check is the topology's part of phase 0: can every node's machine be
	// made, and does none of this cluster exist already? Nothing is created.
	Check(ctx context.Context, r *pipeline.Run, nodes []*Node) error
	// Create is phase 1: when it returns, every node's machine exists and
	// has its Machine set, and the undo of each was pushed right after the
	// call that created it.
	Create(ctx context.Context, r *pipeline.Run, nodes []*Node) error
	// Reach is phase 2: it keeps each node's Address and Installed promises
	// the moment they hold, and returns once Talos answers in maintenance
	// mode on every node.
	Reach(ctx context.Context, r *pipeline.Run, nodes []*Node) error
}

// eachNode runs fn for every node side by side and joins the failures. With
// one failure its error is returned as it is, so a single node's run reads
// exactly like it always did.
func eachNode(nodes []*Node, fn func(n *Node) error) error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A panic here would escape the runner's own recovery and take
			// the undo of everything created so far with it.
			defer func() {
				if v := recover(); v != nil {
					errs[i] = fmt.Errorf("internal error (panic) on node %s: %v", n.Name, v)
				}
			}()
			errs[i] = fn(n)
		}()
	}
	wg.Wait()
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) == 1 {
		return failed[0]
	}
	return errors.Join(failed...)
}
