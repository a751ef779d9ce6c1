package report_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/redact"
	"github.com/rawkode/rawkode-cloud/internal/report"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func ev(typ pipeline.EventType, s float64, phase, wait string) pipeline.Event {
	e := pipeline.Event{Type: typ, Time: at(s), Phase: phase}
	if wait != "" {
		e.Fields = map[string]any{"wait": wait}
	}
	return e
}

// aRun is a real (non-sandbox) run of 10 s: two overlapping waits from 1 to
// 6 s, one from 7 to 9 s, and a superseded wait (never done) in phase B
// that ends with its phase at 9.5 s: 10 - (5 + 2.5) = 2.5 s active.
func aRun() report.Input {
	return report.Input{
		Result: pipeline.Result{Start: t0, Duration: 10 * time.Second, Phases: []pipeline.PhaseTiming{
			{Title: "A", Start: at(0), Duration: 6500 * time.Millisecond, Status: "ok"},
			{Title: "B", Start: at(6.5), Duration: 3 * time.Second, Status: "ok"},
			{Title: "C", Status: "not-run"},
		}},
		Events: []pipeline.Event{
			ev(pipeline.EventWait, 1, "A", "first"),
			ev(pipeline.EventWait, 2, "A", "second"),
			ev(pipeline.EventState, 2.5, "A", "second"),
			ev(pipeline.EventWaitDone, 5, "A", "second"),
			ev(pipeline.EventWaitDone, 6, "A", "first"),
			ev(pipeline.EventWait, 7, "B", "third"),
			ev(pipeline.EventWait, 7.5, "B", "superseded"),
			ev(pipeline.EventRetry, 8, "B", "third"),
			ev(pipeline.EventWaitDone, 9, "B", "third"),
		},
		CPUOnPath:  1500 * time.Millisecond,
		ProcessCPU: -1,
	}
}

func TestBuildRealRun(t *testing.T) {
	t.Parallel()
	r := report.Build(aRun())
	if r.ActiveSeconds != 2.5 {
		t.Errorf("active_seconds = %v, want 2.5", r.ActiveSeconds)
	}
	if r.WallSeconds != 10 || r.TimeScale != 1 || r.Sandbox || r.CPUOnPathSeconds != 1.5 || r.Outcome != "ok" {
		t.Errorf("report = %+v", r)
	}
	if r.CLIAddedSeconds != nil || r.CLIAddedSecondsReal != nil || r.Requests != nil || r.ProcessCPUSeconds != nil {
		t.Errorf("unknowns of a real run are not null: %+v", r)
	}
	if len(r.Phases) != 2 || r.Phases[1].EndAt != 9.5 {
		t.Errorf("phases = %+v, want A and B (C never ran), B ending at 9.5", r.Phases)
	}
	byName := map[string]report.Wait{}
	for _, w := range r.Waits {
		byName[w.What] = w
	}
	if w := byName["second"]; w.StartedAt != 2 || *w.ObservedAt != 5 || *w.Duration != 3 || w.States != 1 || w.LagSeconds != nil || w.ConditionTrueAt != nil {
		t.Errorf("wait second = %+v", w)
	}
	if w := byName["third"]; w.Retries != 1 {
		t.Errorf("wait third = %+v, want 1 retry", w)
	}
	if w := byName["superseded"]; w.ObservedAt != nil {
		t.Errorf("a wait never done has observed_at %v", *w.ObservedAt)
	}
}

func TestBuildFailedRun(t *testing.T) {
	t.Parallel()
	in := aRun()
	in.Err = errors.New("phase B failed")
	if r := report.Build(in); r.Outcome != "failed" {
		t.Errorf("outcome = %q, want failed", r.Outcome)
	}
}

// TestWrite checks the JSON shape: the fixed top-level names, the
// definitions, mode 0600 even over an existing file, and redaction.
func TestWrite(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-token-value-0123456789"
	red := redact.New()
	red.Add(secret)
	in := aRun()
	in.Events = append(in.Events, ev(pipeline.EventWait, 9.6, "B", "token "+secret))
	in.Redact = red.String
	path := filepath.Join(t.TempDir(), "report.json")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := report.Write(path, report.Build(in)); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), secret) {
		t.Errorf("report contains the secret:\n%s", raw)
	}
	var top map[string]any
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"cli_added_seconds", "cli_added_seconds_real", "active_seconds", "wall_seconds",
		"time_scale", "phases", "waits", "requests", "cpu_on_path_seconds", "critical_path_seconds", "definitions"} {
		if _, ok := top[key]; !ok {
			t.Errorf("top-level field %q missing", key)
		}
	}
	defs, _ := top["definitions"].(map[string]any)
	for _, key := range []string{"cli_added_seconds", "cli_added_seconds_real", "critical_path_seconds", "active_seconds"} {
		if s, _ := defs[key].(string); s == "" {
			t.Errorf("definition of %s missing", key)
		}
	}
}

func TestWriteFailsClearly(t *testing.T) {
	t.Parallel()
	err := report.Write(filepath.Join(t.TempDir(), "missing", "report.json"), report.Build(aRun()))
	if err == nil || !strings.Contains(err.Error(), "write report") {
		t.Errorf("err = %v, want a 'write report' error", err)
	}
}
