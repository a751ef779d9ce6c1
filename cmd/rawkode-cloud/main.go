// Command rawkode-cloud takes an operator from nothing to a locked-down
// Kubernetes cluster on Scaleway Elastic Metal with one command.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rawkode/rawkode-cloud/internal/cli"
)

func main() {
	// The first SIGINT/SIGTERM cancels the context and starts cleanup. The
	// signals stay captured afterwards, so a second Ctrl-C cannot kill the
	// process halfway through removing a billed server; the CLI tells the
	// user instead. One channel receives them all (see NotifyInterrupts).
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	ctx, later, stop := cli.NotifyInterrupts(context.Background(), signals)
	env := cli.OSEnv()
	env.Interrupts = later
	code := cli.Execute(ctx, os.Args[1:], env)
	stop()
	os.Exit(code)
}
