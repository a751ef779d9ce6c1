package cli

import (
	"math"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/metering"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/provision"
	"github.com/rawkode/rawkode-cloud/internal/report"
	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/sandbox"
)

type provisionOptions struct {
	sandbox sandboxOptions
	report  string
	// rebuild rebuilds a cluster from the secret store (the rebuild command).
	rebuild bool
	resume  bool
}

func (o *provisionOptions) addFlags(cmd *cobra.Command) {
	o.sandbox.addFlags(cmd, true)
	if !o.rebuild {
		cmd.Flags().BoolVar(&o.resume, "resume", false, "Continue a cluster a run left behind on purpose (exit 3, or --keep-on-failure), found by its tags and the secret store: new join token, verify, lock down; nothing that exists is ordered again (metal topology only: a proxmox cluster is refused)")
	}
	cmd.Flags().StringVar(&o.report, "report", "", "Write a JSON performance report to this file (mode 0600): phase and wait timings, request counts, cli_added_seconds; works with and without --sandbox")
}

func (a *app) runProvision(cmd *cobra.Command, o *provisionOptions) error {
	ctx := cmd.Context()
	cfg, err := a.loadConfig(cmd)
	if err != nil {
		return err
	}
	if done, err := o.sandbox.listFaults(a.env.Out); done {
		return err
	}
	if o.sandbox.enabled {
		// The sandbox replaces endpoints and credentials, and scales the
		// waits: check what the user gave before it is replaced, so that a
		// typo is reported with its source instead of hidden (or, for a
		// malformed duration, turned into a wrong one).
		// What it replaces is never used, so only listed as ignored, however
		// malformed.
		if err := cfg.Validate(config.Requirements{Extra: provision.VersionProblems, Ignore: sandbox.Replaces()}); err != nil {
			return fail.UsageError(err)
		}
	}
	sb, factory, err := a.startSandbox(ctx, cfg, &o.sandbox)
	if err != nil {
		return err
	}
	if sb != nil {
		defer sb.Close()
	}
	rend := a.renderer(cfg)
	defer rend.Close()
	a.sandboxBanner(rend, sb)
	if sb != nil {
		if ov := sb.Overridden(); len(ov) > 0 {
			rend.Emit(pipeline.Event{Type: pipeline.EventWarn, Time: time.Now(), Phase: "sandbox",
				Message: "the sandbox uses its own endpoints and credentials and keeps the cluster's credentials in its emulated Infisical; ignored: " + strings.Join(ov, ", ")})
		}
	}
	var meter *metering.Meter
	if o.report != "" && sb == nil {
		meter = metering.New()
		factory.Meter = meter
	}
	factory.OnRetry = func(service string, at retry.Attempt) {
		rend.Emit(pipeline.Event{Type: pipeline.EventRetry, Time: time.Now(), Message: at.Err.Error(),
			Fields: map[string]any{"wait": service + " call", "attempt": at.N, "next": at.Next.Seconds()}})
	}

	popts := provision.Options{Config: cfg, Factory: factory, Redactor: a.redactor, Sandbox: sb != nil || a.remote != nil}
	if o.rebuild {
		if popts.Rebuild, err = a.rebuildSource(ctx, factory, cfg, rend); err != nil {
			return err
		}
	}
	if o.resume {
		if popts.Resume, err = a.resumeSource(ctx, factory, cfg, rend); err != nil {
			return err
		}
	}
	p := provision.New(popts)
	defer p.Close()
	runner := pipeline.Runner{
		Phases:        p.Phases(),
		Sink:          rend,
		UndoTimeout:   cfg.Duration(config.UndoTimeout),
		KeepOnFailure: cfg.Bool(config.KeepOnFailure),
	}
	rec := &pipeline.Recorder{}
	if o.report != "" {
		runner.Sink = pipeline.Tee(rend, rec)
	}
	cpuBefore := report.ProcessCPU()
	stopWatch := a.watchSecondInterrupt(rend)
	res, runErr := runner.Execute(ctx)
	stopWatch()
	if o.report != "" {
		cpu := report.ProcessCPU() - cpuBefore
		if cpuBefore < 0 {
			cpu = -1
		}
		rep := report.Build(report.Input{Events: rec.Events(), Result: res, Err: runErr, CPUOnPath: p.CPUOnPath(), Requests: meter.Snapshot(),
			ProcessCPU: cpu, Sandbox: sb, Redact: a.redactor.String})
		if err := report.Write(o.report, rep); err != nil {
			rend.Emit(pipeline.Event{Type: pipeline.EventWarn, Time: time.Now(), Message: err.Error()})
		} else {
			fields := map[string]any{"path": o.report}
			if rep.CLIAddedSecondsReal != nil { // unknown outside the sandbox and for failed runs
				fields["cli_added_seconds_real"] = *rep.CLIAddedSecondsReal
			}
			rend.Emit(pipeline.Event{Type: pipeline.EventInfo, Time: time.Now(), Message: "performance report written", Fields: fields})
		}
	}
	if runErr == nil {
		summary := p.Summary()
		summary["phases"] = timings(res)
		summary["total_seconds"] = seconds(res.Duration)
		rend.Emit(pipeline.Event{Type: pipeline.EventSummary, Time: time.Now(), Message: "cluster " + cfg.Get(config.ClusterName) + " is up and locked down", Fields: summary})
	}
	a.emitInventory(ctx, rend, sb)
	return runErr
}

// timings are the summary's phase durations: numbers for programs (the
// renderers print them readably for people).
func timings(res pipeline.Result) []map[string]any {
	out := make([]map[string]any, 0, len(res.Phases))
	for _, ph := range res.Phases {
		t := map[string]any{"phase": ph.Title, "seconds": seconds(ph.Duration), "status": ph.Status}
		if ph.AheadIn != "" {
			t["ahead_in"] = ph.AheadIn
		}
		out = append(out, t)
	}
	return out
}

// seconds rounds to milliseconds, far below what matters to anyone.
func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

// watchSecondInterrupt tells the user, when Ctrl-C comes again during
// cleanup, that cleanup goes on and will list whatever it cannot remove:
// abandoning it silently would leave billed servers behind. Env.Interrupts
// carries only the signals after the first (NotifyInterrupts).
func (a *app) watchSecondInterrupt(sink pipeline.Sink) func() {
	if a.env.Interrupts == nil {
		return func() {}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-a.env.Interrupts:
				sink.Emit(pipeline.Event{Type: pipeline.EventWarn, Time: time.Now(), Phase: "cleanup",
					Message: "interrupt received again: cleanup keeps running so nothing is left billing; it will list anything it cannot remove"})
			}
		}
	}()
	return func() { close(stop); <-done }
}
