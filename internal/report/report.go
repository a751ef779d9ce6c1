// Package report turns one provisioning run into the JSON that
// `provision --report FILE` writes: phase and wait timings, when each awaited
// condition really became true (in the sandbox, from the emulators' own
// timeline), request counts, and how many seconds the CLI itself added on top
// of what the hardware and services took.
package report

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/sandbox"
	"github.com/rawkode/rawkode-cloud/internal/secretfile"
)

// Definitions explain the report's fields; they are written into every
// report so that a reader does not need the source.
var Definitions = map[string]string{
	"cli_added_seconds": "wall_seconds minus critical_path_seconds, both in sandbox seconds: what the CLI added on top of " +
		"what the emulated hardware and services took (null outside the sandbox, where the critical path is unknown, and for " +
		"a failed run, which stopped short of the path it is compared with)",
	"cli_added_seconds_real": "cli_added_seconds in real time: the sum of cli_added_breakdown's real_seconds. " +
		"Each part of cli_added_seconds is split into sandbox time (a wait sitting out its poll interval after its condition held, " +
		"or emulated waiting that CLI lag caused: multiplied by time_scale, since intervals and emulated delays are scaled down with the sandbox) " +
		"and real time (the CLI's own work, API calls, the round trip of the check that saw the condition, stream delivery: counted as measured). " +
		"null whenever cli_added_seconds is",
	"cli_added_breakdown": "where cli_added_seconds sits, along the critical path: before the order; each link the CLI drives " +
		"(critical_path.reactions, only the share the chain had no slack for); the emulators' own lateness " +
		"(critical_path_replayed_seconds - critical_path_seconds, counted once: it is the machine's timer slop, not the CLI's); " +
		"after the last event the run ends on; and what the chain does not explain (unattributed, counted as sandbox time). " +
		"seconds are sandbox seconds, scaled_seconds the part of them that is sandbox time and scales, real_seconds what the part adds to cli_added_seconds_real",
	"critical_path_seconds": "what a CLI reacting instantly and doing no work would take, from the profile along the dependency chain: " +
		"order -> IP -> delivered -> install started -> install completed -> pivot -> maintenance; apply -> the maintenance API lingers -> reboot -> configured; " +
		"configured -> etcd ready -> bootstrap -> etcd healthy (other services count from configured); etcd healthy -> node registered in " +
		"Kubernetes -> CNI pod running -> node Ready -> the kube agent's pod and CoreDNS running; the kube agent starts AgentStart after " +
		"configured, retries until its pod runs, then registers one heartbeat later; end = max(services healthy, registered, CoreDNS running)",
	"critical_path_replayed_seconds": "the same chain with each emulator-driven link measured on the timeline instead of taken from the profile " +
		"(the kube agent's tries and its join included); " +
		"the difference to critical_path_seconds is the emulators' own timer slop",
	"critical_path.reactions": "the links the model takes as instant because the CLI drives them (maintenance -> config taken: the probe " +
		"noticing, then the apply; etcd ready -> bootstrapped), as observed, and on_path_seconds: how much later the replayed chain ends " +
		"with the link as observed than with it instant",
	"active_seconds": "wall time outside every wait (phase 0 checks, CPU work, API calls that create or apply things): " +
		"time the CLI spends working rather than waiting",
	"wall_seconds":        "from the start of phase 0 to the end of the last phase",
	"time_scale":          "how many times faster than real time the sandbox ran (1 for a real run)",
	"cpu_on_path_seconds": "CPU-bound work the critical path had to wait for (PKI and config generation not finished in time)",
	"process_cpu_seconds": "user+system CPU of the whole process during the run (in the sandbox this includes the emulators)",
	"waits.lag_seconds": "observed minus the later of condition_true and started: how long the CLI took to notice. " +
		"null when the condition time is unknown (real runs)",
	"waits.checked_at":       "when the check that saw the condition began (a stream-following wait: when the stream opened); null when the adapter does not say",
	"waits.poll_lag_seconds": "the part of lag_seconds before checked_at: the wait sitting out its poll interval; the rest is the check's own round trip",
	"requests": "requests served per service and operation (sandbox: the emulators' counters; real runs: counted at the wire by the CLI, HTTP requests and gRPC calls including retries and polls); " +
		"requests_total leaves out operations the emulated agent makes (teleport Join)",
	"times": "every *_at field is seconds since the start of the run (started_at)",
}

// Report is the JSON document. cli_added_seconds and
// cli_added_seconds_real are fixed names at the top level.
type Report struct {
	CLIAddedSeconds     *float64 `json:"cli_added_seconds"`
	CLIAddedSecondsReal *float64 `json:"cli_added_seconds_real"`
	ActiveSeconds       float64  `json:"active_seconds"`
	WallSeconds         float64  `json:"wall_seconds"`
	WallSecondsReal     *float64 `json:"wall_seconds_real"`
	TimeScale           float64  `json:"time_scale"`
	Sandbox             bool     `json:"sandbox"`
	Configuration       string   `json:"configuration,omitempty"`
	Outcome             string   `json:"outcome"`
	StartedAt           string   `json:"started_at"`

	CriticalPathSeconds         *float64 `json:"critical_path_seconds"`
	CriticalPathSecondsReal     *float64 `json:"critical_path_seconds_real"`
	CriticalPathReplayedSeconds *float64 `json:"critical_path_replayed_seconds"`
	CPUOnPathSeconds            float64  `json:"cpu_on_path_seconds"`
	ProcessCPUSeconds           *float64 `json:"process_cpu_seconds"`
	WaitLagSeconds              *float64 `json:"wait_lag_seconds"`

	CLIAddedBreakdown []Part `json:"cli_added_breakdown"`

	Phases        []Phase                   `json:"phases"`
	Waits         []Wait                    `json:"waits"`
	Requests      map[string]map[string]int `json:"requests"`
	RequestsTotal *int                      `json:"requests_total"`
	CriticalPath  *CriticalPath             `json:"critical_path"`
	Timeline      []TimelineEvent           `json:"timeline"`
	Definitions   map[string]string         `json:"definitions"`
}

// Phase is one phase's timing.
type Phase struct {
	Title    string  `json:"title"`
	Status   string  `json:"status"`
	StartAt  float64 `json:"start_at"`
	EndAt    float64 `json:"end_at"`
	Duration float64 `json:"duration_seconds"`
}

// Wait is one wait: when it began, when the condition became true, when the
// CLI noticed.
type Wait struct {
	What            string   `json:"what"`
	Phase           string   `json:"phase"`
	StartedAt       float64  `json:"started_at"`
	ConditionEvent  string   `json:"condition_event,omitempty"`
	ConditionTrueAt *float64 `json:"condition_true_at"`
	CheckedAt       *float64 `json:"checked_at"`
	ObservedAt      *float64 `json:"observed_at"`
	Duration        *float64 `json:"duration_seconds"`
	LagSeconds      *float64 `json:"lag_seconds"`
	PollLagSeconds  *float64 `json:"poll_lag_seconds"`
	States          int      `json:"states"`
	Retries         int      `json:"retries"`
}

// Part is one place where cli_added_seconds sits.
type Part struct {
	What          string  `json:"what"`
	Seconds       float64 `json:"seconds"`
	ScaledSeconds float64 `json:"scaled_seconds"`
	RealSeconds   float64 `json:"real_seconds"`
}

// CriticalPath details the emulated critical path.
type CriticalPath struct {
	Steps     []Step     `json:"steps"`
	Segments  []Segment  `json:"segments"`
	Reactions []Reaction `json:"reactions"`
}

// Reaction is a link of the chain the CLI drives.
type Reaction struct {
	From     string  `json:"from"`
	To       string  `json:"to"`
	Observed float64 `json:"observed_seconds"`
	OnPath   float64 `json:"on_path_seconds"`
}

// Step is a modelled event time, seconds after the order.
type Step struct {
	Event string  `json:"event"`
	At    float64 `json:"at_after_order"`
}

// Segment compares one emulator-driven link of the chain with the timeline.
type Segment struct {
	From     string   `json:"from"`
	To       string   `json:"to"`
	Model    float64  `json:"model_seconds"`
	Observed *float64 `json:"observed_seconds"`
}

// TimelineEvent is one emulated event.
type TimelineEvent struct {
	Name    string  `json:"name"`
	Subject string  `json:"subject"`
	At      float64 `json:"at"`
}

// Input is what a run leaves behind.
type Input struct {
	Events []pipeline.Event
	Result pipeline.Result
	Err    error
	// CPUOnPath is provision's CPU-bound time on the critical path.
	CPUOnPath time.Duration
	// ProcessCPU is the process's CPU during the run; negative when unknown.
	ProcessCPU time.Duration
	// Sandbox is the sandbox the run used; nil for a real run.
	Sandbox *sandbox.Sandbox
	// Requests are the counts a real run measured at the wire (the sandbox
	// reports its emulators' counters instead); nil when not measured.
	Requests map[string]map[string]int
	// Configuration names what ran (e.g. "current", "seed"); optional.
	Configuration string
	// Redact scrubs every free-text field; nil leaves them as they are.
	Redact func(string) string
}

// Build computes the report.
func Build(in Input) Report {
	red := in.Redact
	if red == nil {
		red = func(s string) string { return s }
	}
	start := in.Result.Start
	at := func(t time.Time) float64 { return secs(t.Sub(start)) }
	wall := in.Result.Duration
	r := Report{
		WallSeconds:      secs(wall),
		TimeScale:        1,
		Sandbox:          in.Sandbox != nil,
		Configuration:    in.Configuration,
		Outcome:          "ok",
		StartedAt:        start.UTC().Format(time.RFC3339Nano),
		CPUOnPathSeconds: secs(in.CPUOnPath),
		Phases:           []Phase{},
		Waits:            []Wait{},
		Definitions:      Definitions,
	}
	if in.Err != nil {
		r.Outcome = "failed"
	}
	if in.ProcessCPU >= 0 {
		r.ProcessCPUSeconds = ptr(secs(in.ProcessCPU))
	}
	phaseEnd := map[string]time.Time{}
	for _, ph := range in.Result.Phases {
		end := ph.Start.Add(ph.Duration)
		if ph.Status == "not-run" {
			continue
		}
		phaseEnd[ph.Title] = end
		r.Phases = append(r.Phases, Phase{Title: red(ph.Title), Status: ph.Status, StartAt: at(ph.Start), EndAt: at(end), Duration: secs(ph.Duration)})
	}

	var tl []sandbox.TimelineEvent
	if in.Sandbox != nil {
		tl = in.Sandbox.Timeline()
		r.TimeScale = in.Sandbox.Speed()
	}
	waits, spans := collectWaits(in.Events, phaseEnd, start.Add(wall))
	var lagSum float64
	lagKnown := in.Sandbox != nil
	for _, w := range waits {
		out := Wait{What: red(w.what), Phase: red(w.phase), StartedAt: at(w.start), States: w.states, Retries: w.retries}
		if !w.done.IsZero() {
			out.ObservedAt = ptr(at(w.done))
			out.Duration = ptr(secs(w.done.Sub(w.start)))
		}
		if !w.checked.IsZero() {
			out.CheckedAt = ptr(at(w.checked))
		}
		if in.Sandbox != nil {
			if cond, ev, ok := sandbox.ConditionTime(tl, w.what); ok {
				w.cond = cond
				out.ConditionEvent = ev
				out.ConditionTrueAt = ptr(at(cond))
				if !w.done.IsZero() {
					lag := w.done.Sub(later(cond, w.start))
					out.LagSeconds = ptr(secs(lag))
					out.PollLagSeconds = ptr(secs(w.pollLag(w.start, w.done)))
					lagSum += secs(lag)
				}
			} else if ev != "" {
				out.ConditionEvent = ev
			}
		}
		r.Waits = append(r.Waits, out)
	}
	if lagKnown {
		r.WaitLagSeconds = ptr(round(lagSum))
	}
	activeD := wall - covered(spans, start, start.Add(wall))
	r.ActiveSeconds = secs(activeD)

	if in.Sandbox == nil {
		if in.Requests != nil {
			r.Requests = in.Requests
			total := 0
			for _, ops := range in.Requests {
				for _, n := range ops {
					total += n
				}
			}
			r.RequestsTotal = &total
		}
		return r
	}
	speed := in.Sandbox.Speed()
	cp := in.Sandbox.CriticalPath()
	r.CriticalPathSeconds = ptr(secs(cp.Total))
	r.CriticalPathSecondsReal = ptr(secs(cp.Real))
	r.CriticalPathReplayedSeconds = ptr(secs(cp.Replayed))
	// Unrounded until the end: the real-time figures multiply by the speed.
	added, active := (wall - cp.Total).Seconds(), activeD.Seconds()
	r.WallSecondsReal = ptr(round((wall.Seconds()-active)*speed + active))
	if in.Err == nil {
		// A failed run ends before the path it would be compared with:
		// wall minus critical path is then negative and means nothing.
		r.CLIAddedSeconds = ptr(round(added))
		if parts, ok := breakdown(cp, waits, start, start.Add(wall), speed); ok {
			sum := 0.0
			for _, p := range parts {
				sum += p.real
				r.CLIAddedBreakdown = append(r.CLIAddedBreakdown, Part{What: p.what, Seconds: secs(p.d), ScaledSeconds: secs(p.poll), RealSeconds: round(p.real)})
			}
			r.CLIAddedSecondsReal = ptr(round(sum))
		} else {
			// The timeline lacks the chain's ends (a topology the chain
			// does not model): every second in a wait counts as lag.
			r.CLIAddedSecondsReal = ptr(round((added-active)*speed + active))
		}
	}
	r.CriticalPath = &CriticalPath{Reactions: []Reaction{}}
	for _, s := range cp.Steps {
		r.CriticalPath.Steps = append(r.CriticalPath.Steps, Step{Event: s.Event, At: secs(s.At)})
	}
	for _, g := range cp.Segments {
		seg := Segment{From: g.From, To: g.To, Model: secs(g.Model)}
		if g.ObservedOK {
			seg.Observed = ptr(secs(g.Observed))
		}
		r.CriticalPath.Segments = append(r.CriticalPath.Segments, seg)
	}
	for _, x := range cp.Reactions {
		r.CriticalPath.Reactions = append(r.CriticalPath.Reactions, Reaction{From: x.From, To: x.To, Observed: secs(x.Observed), OnPath: secs(x.OnPath)})
	}
	for _, e := range tl {
		r.Timeline = append(r.Timeline, TimelineEvent{Name: e.Name, Subject: red(e.Subject), At: at(e.At)})
	}
	r.Requests = in.Sandbox.Requests()
	total := 0
	for svc, ops := range r.Requests {
		for op, n := range ops {
			if !sandbox.AgentOps[svc][op] {
				total += n
			}
		}
	}
	r.RequestsTotal = &total
	return r
}

type waitSpan struct {
	what, phase     string
	start, done     time.Time
	end             time.Time // done, or the end of its phase when never done
	checked         time.Time // when the check that saw the condition began; zero when unknown
	cond            time.Time // when the condition became true (sandbox); zero when unknown
	states, retries int
}

// pollLag is how long, within [from, to], the wait sat out its poll
// interval with its condition already true: from the condition (the wait's
// start when unknown) to the start of the check that saw it (done when
// unknown). Zero for a wait never done: another noticed first.
func (w *waitSpan) pollLag(from, to time.Time) time.Duration {
	if w.done.IsZero() {
		return 0
	}
	a := later(w.start, w.cond)
	b := w.done
	if !w.checked.IsZero() {
		b = earlier(b, w.checked)
	}
	a, b = later(a, from), earlier(b, to)
	if !b.After(a) {
		return 0
	}
	return b.Sub(a)
}

// collectWaits pairs wait and wait-done events by title, in order.
func collectWaits(events []pipeline.Event, phaseEnd map[string]time.Time, runEnd time.Time) ([]*waitSpan, [][2]time.Time) {
	var all []*waitSpan
	open := map[string][]*waitSpan{}
	for _, e := range events {
		what, _ := e.Fields["wait"].(string)
		switch e.Type {
		case pipeline.EventWait:
			w := &waitSpan{what: what, phase: e.Phase, start: e.Time}
			all = append(all, w)
			open[what] = append(open[what], w)
		case pipeline.EventWaitDone:
			if q := open[what]; len(q) > 0 {
				q[0].done = e.Time
				if c, ok := e.Fields["checked"].(float64); ok {
					q[0].checked = q[0].start.Add(time.Duration(c * float64(time.Second)))
				}
				open[what] = q[1:]
			}
		case pipeline.EventState, pipeline.EventRetry:
			if q := open[what]; len(q) > 0 {
				if e.Type == pipeline.EventState {
					q[0].states++
				} else {
					q[0].retries++
				}
			}
		}
	}
	spans := make([][2]time.Time, 0, len(all))
	for _, w := range all {
		w.end = w.done
		if w.end.IsZero() {
			// Superseded (another wait noticed first) or failed: it held
			// the path up at most until its phase ended.
			w.end = runEnd
			if pe, ok := phaseEnd[w.phase]; ok {
				w.end = pe
			}
		}
		spans = append(spans, [2]time.Time{w.start, w.end})
	}
	return all, spans
}

// covered is the length of the union of spans, clipped to [from, to].
func covered(spans [][2]time.Time, from, to time.Time) time.Duration {
	sort.Slice(spans, func(i, j int) bool { return spans[i][0].Before(spans[j][0]) })
	var total time.Duration
	var curS, curE time.Time
	for _, s := range spans {
		a, b := later(s[0], from), earlier(s[1], to)
		if !b.After(a) {
			continue
		}
		if curE.IsZero() || a.After(curE) {
			total += curE.Sub(curS)
			curS, curE = a, b
			continue
		}
		curE = later(curE, b)
	}
	return total + curE.Sub(curS)
}

// Write writes the report to path with mode 0600: it names servers and
// addresses, which are nobody else's business.
func Write(path string, r Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := secretfile.Write(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func secs(d time.Duration) float64 { return round(d.Seconds()) }

// round keeps reports readable: a millisecond is far below what matters.
func round(f float64) float64 {
	if f < 0 {
		return -round(-f)
	}
	return float64(int64(f*1000+0.5)) / 1000
}

func ptr(f float64) *float64 { return &f }

// part is one place of cli_added_seconds, unrounded.
type part struct {
	what    string
	d, poll time.Duration // sandbox time, and the part of it that is poll lag
	real    float64       // seconds it adds to cli_added_seconds_real
}

// breakdown splits wall minus the critical path along the chain: before
// the order, the CLI's reactions (their share on the path), the emulators'
// slop, after the chain's last event, and what is left unexplained. Poll
// lag (and emulated waiting a reaction caused) scales with speed,
// everything else is real time; the emulators' slop is the machine's timer
// lateness, counted once, and the unexplained rest counts as sandbox time.
// false when the timeline lacks the chain's ends.
func breakdown(cp sandbox.CriticalPath, waits []*waitSpan, start, end time.Time, speed float64) ([]part, bool) {
	if !cp.EndsOK || cp.Ordered.Before(start) || cp.End.After(end) {
		return nil, false
	}
	// pollLag is the union of every wait's poll lag within [a, b].
	pollLag := func(a, b time.Time) time.Duration {
		var spans [][2]time.Time
		for _, w := range waits {
			if d := w.pollLag(a, b); d > 0 {
				from := later(later(w.start, w.cond), a)
				spans = append(spans, [2]time.Time{from, from.Add(d)})
			}
		}
		return covered(spans, a, b)
	}
	mk := func(what string, d, poll time.Duration) part {
		poll = min(max(poll, 0), max(d, 0))
		return part{what: what, d: d, poll: poll, real: (d - poll).Seconds() + poll.Seconds()*speed}
	}
	parts := []part{mk("before the first server was ordered (phases 0 and 1)", cp.Ordered.Sub(start), pollLag(start, cp.Ordered))}
	for _, x := range cp.Reactions {
		what := x.From + " -> " + x.To
		if x.Observed <= 0 || x.OnPath <= 0 {
			parts = append(parts, part{what: what})
			continue
		}
		// The share on the path carries the reaction's poll lag in
		// proportion. A reaction that cost more than itself made the
		// agent miss a try: the wait for the next one is sandbox time.
		share := min(float64(x.OnPath)/float64(x.Observed), 1)
		poll := time.Duration(float64(pollLag(x.FromAt, x.FromAt.Add(x.Observed))) * share)
		parts = append(parts, mk(what, x.OnPath, poll+max(x.OnPath-x.Observed, 0)))
	}
	slop := cp.Replayed - cp.Total
	parts = append(parts, part{what: "the emulators' own lateness (critical_path_replayed_seconds - critical_path_seconds)", d: slop, real: slop.Seconds()})
	parts = append(parts, mk("after the last event the run ends on (noticing it, the lockdown, the summary)", end.Sub(cp.End), pollLag(cp.End, end)))
	var explained time.Duration
	for _, p := range parts {
		explained += p.d
	}
	rest := (end.Sub(start) - cp.Total) - explained
	parts = append(parts, part{what: "unattributed (counted as sandbox time)", d: rest, poll: rest, real: rest.Seconds() * speed})
	return parts, true
}
