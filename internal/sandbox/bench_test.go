package sandbox_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/provision"
	"github.com/rawkode/rawkode-cloud/internal/redact"
	"github.com/rawkode/rawkode-cloud/internal/report"
	"github.com/rawkode/rawkode-cloud/internal/sandbox"
)

// seedIntervals are the seed design's polling intervals.
var seedIntervals = map[string]string{
	config.ServerPollInterval:        "30s",
	config.TalosMaintenanceInterval:  "10s",
	config.TalosMTLSInterval:         "10s",
	config.ServicesInterval:          "15s",
	config.TeleportAgentPollInterval: "15s",
}

// benchConfig is one way of provisioning to compare.
type benchConfig struct {
	name string
	// seed: the original design, i.e. no overlap (PKI in phase 4), the seed
	// polling intervals and no streams (the emulators refuse them, so the
	// CLI polls as the seed did).
	seed bool
	// controlPlanes and workers size the cluster (zero: one node); jitter
	// spreads the servers' delays (see sandbox.Profile.Jitter).
	controlPlanes, workers int
	jitter                 float64
}

// provisionReport runs one whole provisioning in a fresh sandbox at the
// default speed and profile and returns its report.
func provisionReport(tb testing.TB, c benchConfig) report.Report {
	tb.Helper()
	prof := sandbox.RealisticProfile()
	prof.Jitter = c.jitter
	sb, err := sandbox.Start(sandbox.Options{PollOnly: c.seed, Profile: &prof})
	if err != nil {
		tb.Fatal(err)
	}
	defer sb.Close()
	cfg := config.New()
	if c.controlPlanes > 0 {
		cfg.Set(config.ControlPlanes, fmt.Sprint(c.controlPlanes), config.FromFlag, "--control-planes")
		cfg.Set(config.Workers, fmt.Sprint(c.workers), config.FromFlag, "--workers")
	}
	if c.seed {
		for name, v := range seedIntervals {
			cfg.Set(name, v, config.FromFlag, "--"+name)
		}
	}
	sb.Apply(cfg) // scales the intervals set above by the sandbox speed
	red := redact.New()
	red.Add(cfg.Secrets()...)
	p := provision.New(provision.Options{Config: cfg, Factory: sb.Factory(), Redactor: red, Sandbox: true, Sequential: c.seed})
	defer p.Close()
	rec := &pipeline.Recorder{}
	runner := pipeline.Runner{Phases: p.Phases(), Sink: rec, UndoTimeout: cfg.Duration(config.UndoTimeout)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cpu := report.ProcessCPU()
	res, err := runner.Execute(ctx)
	cpu = report.ProcessCPU() - cpu
	if err != nil {
		tb.Fatalf("%s provisioning failed: %v\n%s", c.name, err, dump(rec.Events()))
	}
	return report.Build(report.Input{Events: rec.Events(), Result: res, CPUOnPath: p.CPUOnPath(), ProcessCPU: cpu,
		Sandbox: sb, Configuration: c.name, Redact: red.String})
}

// BenchmarkProvision compares, on the same default sandbox profile, the
// current behaviour with the seed design's and prints the figures side by
// side. Run it with:
//
//	go test -run '^$' -bench Provision -benchtime 3x ./internal/sandbox/
func BenchmarkProvision(b *testing.B) {
	configs := []benchConfig{{name: "current"}, {name: "seed", seed: true}}
	reports := make([]report.Report, len(configs))
	stats := make([]string, len(configs))
	for i, c := range configs {
		b.Run(c.name, func(b *testing.B) {
			var r report.Report
			var added, real, worst float64
			for range b.N {
				r = provisionReport(b, c)
				added += *r.CLIAddedSeconds
				real += *r.CLIAddedSecondsReal
				worst = max(worst, *r.CLIAddedSecondsReal)
			}
			reports[i] = r
			n := float64(b.N)
			stats[i] = fmt.Sprintf("%.3f / %.3f (n=%d)", real/n, worst, b.N)
			b.ReportMetric(added/n, "cli_added_s")
			b.ReportMetric(real/n, "cli_added_real_s")
			b.ReportMetric(float64(*r.RequestsTotal), "requests")
		})
	}
	if reports[0].CLIAddedSeconds == nil || reports[1].CLIAddedSeconds == nil {
		return // a sub-benchmark was filtered out or failed
	}
	printSideBySide(os.Stdout, configs, reports, stats)
}

// BenchmarkHighlyAvailable compares one node with 3 control planes and 2
// workers, side by side on the default profile with ±5% per-server jitter
// on Scaleway's delays, and prints wall time, their ratio and requests:
//
//	go test -run '^$' -bench HighlyAvailable -benchtime 3x ./internal/sandbox/
func BenchmarkHighlyAvailable(b *testing.B) {
	configs := []benchConfig{{name: "1 node", jitter: 0.05}, {name: "3+2 nodes", controlPlanes: 3, workers: 2, jitter: 0.05}}
	walls := make([]float64, len(configs))
	reqs := make([]int, len(configs))
	var last [2]report.Report
	for i, c := range configs {
		b.Run(strings.ReplaceAll(c.name, " ", "-"), func(b *testing.B) {
			var wall float64
			for range b.N {
				r := provisionReport(b, c)
				wall += r.WallSeconds
				reqs[i] = *r.RequestsTotal
				last[i] = r
			}
			walls[i] = wall / float64(b.N)
			b.ReportMetric(walls[i], "wall_s")
			b.ReportMetric(float64(reqs[i]), "requests")
		})
	}
	if walls[0] == 0 || walls[1] == 0 {
		return
	}
	fmt.Printf("\n1 node: wall %.3fs, %d requests, cli_added_seconds_real %.3f\n", walls[0], reqs[0], *last[0].CLIAddedSecondsReal)
	fmt.Printf("3+2:    wall %.3fs, %d requests (%.1f per node)\n", walls[1], reqs[1], float64(reqs[1])/5)
	fmt.Printf("ratio:  %.3f× wall\n", walls[1]/walls[0])
}

// printSideBySide prints the last run of each configuration, and stats (the
// mean and worst cli_added_seconds_real over every run).
func printSideBySide(w *os.File, configs []benchConfig, reports []report.Report, stats []string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "\nSide by side, default sandbox profile, speed %g× (last run of each):\n", reports[0].TimeScale)
	head := "\t"
	for _, c := range configs {
		head += c.name + "\t"
	}
	fmt.Fprintln(tw, head)
	row := func(name string, f func(r report.Report) string) {
		line := name + "\t"
		for _, r := range reports {
			line += f(r) + "\t"
		}
		fmt.Fprintln(tw, line)
	}
	num := func(p *float64) string {
		if p == nil {
			return "null"
		}
		return fmt.Sprintf("%.3f", *p)
	}
	row("cli_added_seconds", func(r report.Report) string { return num(r.CLIAddedSeconds) })
	row("cli_added_seconds_real", func(r report.Report) string { return num(r.CLIAddedSecondsReal) })
	row("  mean / worst over runs", func(r report.Report) string {
		for i := range reports {
			if reports[i].Configuration == r.Configuration {
				return stats[i]
			}
		}
		return "-"
	})
	row("active_seconds", func(r report.Report) string { return fmt.Sprintf("%.3f", r.ActiveSeconds) })
	row("cpu_on_path_seconds", func(r report.Report) string { return fmt.Sprintf("%.3f", r.CPUOnPathSeconds) })
	row("wall_seconds", func(r report.Report) string { return fmt.Sprintf("%.3f", r.WallSeconds) })
	row("critical_path_seconds", func(r report.Report) string { return num(r.CriticalPathSeconds) })
	row("wait_lag_seconds (sum)", func(r report.Report) string { return num(r.WaitLagSeconds) })
	for i := range reports[0].Waits {
		what := shortWait(reports[0].Waits[i].What)
		row("  lag: "+what, func(r report.Report) string {
			for _, wt := range r.Waits {
				if shortWait(wt.What) == what {
					return num(wt.LagSeconds)
				}
			}
			return "-"
		})
	}
	row("requests_total", func(r report.Report) string { return fmt.Sprint(*r.RequestsTotal) })
	services := map[string]bool{}
	for _, r := range reports {
		for s := range r.Requests {
			services[s] = true
		}
	}
	names := make([]string, 0, len(services))
	for s := range services {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, s := range names {
		row("  requests: "+s, func(r report.Report) string {
			n, ops := 0, []string{}
			for op, c := range r.Requests[s] {
				if !sandbox.AgentOps[s][op] {
					n += c
					ops = append(ops, fmt.Sprintf("%s=%d", op, c))
				}
			}
			sort.Strings(ops)
			return fmt.Sprintf("%d (%s)", n, strings.Join(ops, " "))
		})
	}
	tw.Flush()
	fmt.Fprintln(w, "cli_added_seconds_real: poll lag along the critical path × speed + the CLI's real time on it; see the report's cli_added_breakdown and definitions.")
}

// shortWait drops IDs and addresses from a wait's title for the table.
func shortWait(what string) string {
	fields := strings.Fields(what)
	out := fields[:0]
	for _, f := range fields {
		if strings.Count(f, "-") == 4 || strings.Count(f, ".") == 3 {
			continue
		}
		out = append(out, f)
	}
	return strings.Join(out, " ")
}
