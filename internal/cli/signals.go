package cli

import (
	"context"
	"os"
)

// NotifyInterrupts turns the process's interrupt signals into what Execute
// needs: the returned context is cancelled by the first signal, and every
// later one is delivered on the returned channel (Env.Interrupts). A single
// goroutine receives every signal, so the first can never also be taken for
// a second: two listeners on one signal race, and once in a while the
// warning about a repeated Ctrl-C appeared after a single one.
//
// stop ends the forwarding; it does not stop the signals themselves.
func NotifyInterrupts(parent context.Context, signals <-chan os.Signal) (ctx context.Context, later <-chan os.Signal, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	out := make(chan os.Signal, 4)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		first := true
		for {
			select {
			case <-quit:
				return
			case s := <-signals:
				if first {
					first = false
					cancel()
					continue
				}
				select {
				case out <- s:
				default: // nobody listening and the buffer full: the warning was given
				}
			}
		}
	}()
	return ctx, out, func() {
		close(quit)
		<-done
		cancel()
	}
}
