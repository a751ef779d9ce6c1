package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// ErrOperatorIPChanged means this machine's public IP is no longer the one
// the nodes' temporary firewall admits.
var ErrOperatorIPChanged = errors.New("operator IP changed")

// operatorIPChanged detects this machine's public IP again and says when
// it is no longer the one the firewall admits: a node that stops answering
// is then not broken, we are just knocking from elsewhere. An IP given by
// the operator-ip setting is not re-detected, and a failed detection proves
// nothing (nil).
func (p *Provisioner) operatorIPChanged(ctx context.Context) error {
	if p.cfg.Get(config.OperatorIP) != "" || !p.operatorIP.IsValid() {
		return nil
	}
	now, err := p.ip.Detect(ctx)
	if err != nil || now == p.operatorIP {
		return nil
	}
	return fmt.Errorf("your public IP changed from %s to %s; the nodes only admit %s (run again from a machine with that address, or set operator-ip): %w",
		p.operatorIP, now, p.operatorIP, ErrOperatorIPChanged)
}

// guardIP watches a wait on a node: the first time the node stops
// answering (a timeout, what a firewall drop looks like), the operator's IP
// is detected again, and if it changed the wait ends at once with that as
// its cause instead of running into its deadline. done returns that cause,
// or nil.
func (p *Provisioner) guardIP(ctx context.Context, opts wait.Options) (context.Context, wait.Options, func() error) {
	gctx, cancel := context.WithCancelCause(ctx)
	var once sync.Once
	var wg sync.WaitGroup
	on := opts.OnState
	opts.OnState = func(s string) {
		if on != nil {
			on(s)
		}
		if strings.Contains(s, "timeout") {
			once.Do(func() {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := p.operatorIPChanged(gctx); err != nil {
						cancel(err)
					}
				}()
			})
		}
	}
	done := func() error {
		wg.Wait()
		cause := context.Cause(gctx)
		cancel(nil)
		if errors.Is(cause, ErrOperatorIPChanged) {
			return cause
		}
		return nil
	}
	return gctx, opts, done
}
