package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/provision"
	"github.com/rawkode/rawkode-cloud/internal/sandbox"
)

type sandboxOptions struct {
	enabled bool
	speed   float64
	faults  []string
}

func (o *sandboxOptions) addFlags(cmd *cobra.Command, withFaults bool) {
	cmd.Flags().BoolVar(&o.enabled, "sandbox", false, "Run against in-process emulators of every external service: no account needed, nothing real is touched")
	cmd.Flags().Float64Var(&o.speed, "sandbox-speed", sandbox.DefaultSpeed, "How many times faster than real time the sandbox runs (the CLI's waits are scaled to match)")
	if withFaults {
		cmd.Flags().StringArrayVar(&o.faults, "sandbox-fault", nil, "Inject a fault: POINT=KIND or POINT=KIND@N (first N calls only), either with @node=NAME to hit one node; repeatable; 'list' shows points and kinds")
		_ = cmd.RegisterFlagCompletionFunc("sandbox-fault", completeFaults)
	}
}

// listFaults prints the fault catalogue when asked with --sandbox-fault list.
func (o *sandboxOptions) listFaults(w io.Writer) (bool, error) {
	for _, f := range o.faults {
		if f != "list" {
			continue
		}
		fmt.Fprintln(w, "Fault points (--sandbox-fault POINT=KIND[@N][@node=NAME]):")
		for _, p := range sandbox.FaultPoints {
			fmt.Fprintf(w, "  %-26s %s\n", p.Point, p.What)
			for _, k := range emulator.SpecialKinds {
				if what, ok := p.Special[k]; ok {
					fmt.Fprintf(w, "  %-26s   =%s: %s\n", "", k, what)
				}
			}
		}
		kinds := make([]string, len(emulator.Kinds))
		for i, k := range emulator.Kinds {
			kinds[i] = string(k)
		}
		fmt.Fprintf(w, "Kinds: %s\n", strings.Join(kinds, ", "))
		fmt.Fprintln(w, "  error: permanent failure · unavailable: transient (5xx, Unavailable) · ratelimit: 429 / ResourceExhausted")
		fmt.Fprintln(w, "  hang: never answers · never: the awaited condition never comes · @N: only the first N times")
		fmt.Fprintln(w, "  =linger, =stale, =deny, =expire: special kinds, only where a point lists them")
		fmt.Fprintln(w, "  @node=NAME: only that node (e.g. talos.bootstrap=error@node=sandbox-cp-1, scaleway.install=error@node=sandbox-worker-2);")
		fmt.Fprintln(w, "    applies to the talos.* points and scaleway.install; the others hit every node")
		return true, nil
	}
	return false, nil
}

// startSandbox starts the emulators when --sandbox is set and points the
// settings and the adapter factory at them.
func (a *app) startSandbox(ctx context.Context, cfg *config.Config, o *sandboxOptions) (*sandbox.Sandbox, provision.Factory, error) {
	if !o.enabled {
		if len(o.faults) > 0 || o.speed != sandbox.DefaultSpeed {
			return nil, provision.Factory{}, fail.UsageError(fmt.Errorf("--sandbox-fault and --sandbox-speed only apply with --sandbox (a served sandbox takes them as flags of 'sandbox serve', or later through 'sandbox fault')"))
		}
		if cfg.IsSet(config.SandboxURL) {
			f, err := a.connectServed(ctx, cfg)
			return nil, f, err
		}
		return nil, a.factory(), nil
	}
	if o.speed <= 0 || o.speed > 100000 {
		return nil, provision.Factory{}, fail.UsageError(fmt.Errorf("--sandbox-speed must be greater than 0 and at most 100000 (1 is real time, the default %d), got %g", sandbox.DefaultSpeed, o.speed))
	}
	faults, err := sandbox.ParseFaults(o.faults)
	if err != nil {
		return nil, provision.Factory{}, fail.UsageError(err)
	}
	sb, err := sandbox.Start(sandbox.Options{Speed: o.speed, Faults: faults})
	if err != nil {
		return nil, provision.Factory{}, err
	}
	a.sandbox = true
	a.paste = a.pasteArgs(cfg)
	sb.Apply(cfg)
	a.redactor.Add(cfg.Secrets()...)
	if a.env.OnSandbox != nil {
		a.env.OnSandbox(sb)
	}
	return sb, sb.Factory(), nil
}

// connectServed points the factory at a sandbox served by another process
// ('sandbox serve') and puts the waits on its clock.
func (a *app) connectServed(ctx context.Context, cfg *config.Config) (provision.Factory, error) {
	// Only the address is checked here: the rest is validated by the
	// command once Apply has filled in what the sandbox derives.
	if s, _ := config.Lookup(config.SandboxURL); s.Check(cfg.Get(config.SandboxURL)) != nil {
		return provision.Factory{}, fail.UsageError(config.Problems{cfg.ProblemFor(config.SandboxURL, s.Check(cfg.Get(config.SandboxURL)).Error())})
	}
	r, err := sandbox.Connect(ctx, cfg.Get(config.SandboxURL))
	if err != nil {
		return provision.Factory{}, fail.UsageError(fmt.Errorf("%w; start one with 'rawkode-cloud sandbox serve --write-config FILE' or remove the setting %s (%s)",
			err, config.SandboxURL, describeSource(cfg.Value(config.SandboxURL))))
	}
	r.Apply(cfg)
	a.remote = r
	a.paste = a.pasteArgs(cfg)
	return r.Factory(), nil
}

func describeSource(v config.Value) string {
	if v.Origin != "" {
		return string(v.Source) + " " + v.Origin
	}
	return string(v.Source)
}

// sandboxBanner says which sandbox, if any, the command runs against.
func (a *app) sandboxBanner(sink pipeline.Sink, sb *sandbox.Sandbox) {
	msg := ""
	switch {
	case sb != nil:
		msg = sb.Describe()
	case a.remote != nil:
		msg = a.remote.Describe()
	default:
		return
	}
	sink.Emit(pipeline.Event{Type: pipeline.EventInfo, Time: time.Now(), Phase: "sandbox", Message: msg})
}

// emitInventory ends a sandboxed command with what the emulators hold.
func (a *app) emitInventory(ctx context.Context, sink pipeline.Sink, sb *sandbox.Sandbox) {
	switch {
	case sb != nil:
		sink.Emit(sb.InventoryEvent())
	case a.remote != nil:
		inv, err := a.remote.Inventory(context.WithoutCancel(ctx))
		if err != nil {
			sink.Emit(pipeline.Event{Type: pipeline.EventWarn, Time: time.Now(), Phase: "sandbox", Message: err.Error()})
			return
		}
		sink.Emit(sandbox.InventoryEventOf(inv))
	}
}
