package progress_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/progress"
	"github.com/rawkode/rawkode-cloud/internal/redact"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// sample is one of every event a provision run emits (summary aside), as the
// runner would stamp them.
func sample() []pipeline.Event {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	return []pipeline.Event{
		{Type: pipeline.EventPlan, Time: at(0), Fields: map[string]any{"phases": []string{"order", "install", "bootstrap"}}},
		{Type: pipeline.EventPhaseStart, Time: at(0), Phase: "order", Fields: map[string]any{"index": 0, "total": 3}},
		{Type: pipeline.EventCreated, Time: at(1), Phase: "order", Fields: map[string]any{"resource": "Scaleway server 42 in fr-par-2"}},
		{Type: pipeline.EventPhaseDone, Time: at(3), Phase: "order", Fields: map[string]any{"duration": 3.2}},
		{Type: pipeline.EventPhaseStart, Time: at(3), Phase: "install", Fields: map[string]any{"index": 1, "total": 3}},
		{Type: pipeline.EventWait, Time: at(3), Phase: "install", Fields: map[string]any{"wait": "OS install", "timeout": 2700.0}},
		{Type: pipeline.EventState, Time: at(727), Phase: "install", Fields: map[string]any{"wait": "OS install", "state": "installing", "elapsed": 724.0, "timeout": 2700.0}},
		{Type: pipeline.EventRetry, Time: at(730), Phase: "install", Message: "503 Service Unavailable", Fields: map[string]any{"wait": "OS install", "attempt": 2, "next": 4.0}},
		{Type: pipeline.EventWaitDone, Time: at(900), Phase: "install", Fields: map[string]any{"wait": "OS install", "elapsed": 897.0}},
		{Type: pipeline.EventInfo, Time: at(900), Phase: "install", Message: "server reachable", Fields: map[string]any{"ip": "203.0.113.7"}},
		{Type: pipeline.EventWarn, Time: at(900), Phase: "install", Message: "slow delivery"},
		{Type: pipeline.EventPhaseDone, Time: at(901), Phase: "install", Fields: map[string]any{"duration": 898.0}},
		{Type: pipeline.EventPhaseStart, Time: at(901), Phase: "bootstrap", Fields: map[string]any{"index": 2, "total": 3}},
		{Type: pipeline.EventPhaseSkip, Time: at(902), Phase: "bootstrap", Message: "already bootstrapped", Fields: map[string]any{"duration": 1.0}},
		{Type: pipeline.EventPhaseFailed, Time: at(903), Phase: "bootstrap", Message: "etcd never healthy", Fields: map[string]any{"duration": 2.0}},
		{Type: pipeline.EventUndoStart, Time: at(903), Phase: "cleanup", Fields: map[string]any{"steps": 2}},
		{Type: pipeline.EventUndoStep, Time: at(904), Phase: "cleanup", Fields: map[string]any{"resource": "DNS record k8s.example.com", "ok": true, "duration": 0.4}},
		{Type: pipeline.EventUndoStep, Time: at(905), Phase: "cleanup", Fields: map[string]any{"resource": "Scaleway server 42 in fr-par-2", "ok": false, "error": "still locked", "duration": 1.0}},
		{Type: pipeline.EventLeftover, Time: at(905), Phase: "cleanup", Message: "could not be removed", Fields: map[string]any{"resource": "Scaleway server 42 in fr-par-2", "command": "scw baremetal server delete 42 zone=fr-par-2"}},
		{Type: pipeline.EventKept, Time: at(905), Phase: "cleanup", Message: "kept because of --keep-on-failure", Fields: map[string]any{"resource": "token abc", "command": "tctl tokens rm abc"}},
		{Type: pipeline.EventUndoDone, Time: at(905), Phase: "cleanup", Fields: map[string]any{"remaining": 1}},
		{Type: pipeline.EventResult, Time: at(906), Fields: map[string]any{"exit_code": 4, "error": "bootstrap: etcd never healthy"}},
	}
}

// render feeds events to a fresh renderer and returns everything it wrote.
func render(mode progress.Mode, terminal bool, r *redact.Redactor, events []pipeline.Event) string {
	var buf bytes.Buffer
	rd := progress.New(mode, &buf, r, terminal)
	for _, e := range events {
		rd.Emit(e)
	}
	rd.Close()
	return buf.String()
}

var plainLine = regexp.MustCompile(`^2026-01-02T\d\d:\d\d:\d\dZ \[[a-z-]+\] \S.*$`)

func TestPlain(t *testing.T) {
	t.Parallel()
	for _, mode := range []progress.Mode{progress.Plain, progress.Auto} {
		out := render(mode, false, redact.New(), sample())
		if strings.ContainsAny(out, "\x1b\r") {
			t.Errorf("%s: control codes in plain output:\n%q", mode, out)
		}
		for _, c := range out {
			if c < 0x20 && c != '\n' {
				t.Errorf("%s: control character %q in plain output", mode, c)
			}
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != len(sample()) {
			t.Fatalf("%s: %d lines for %d events:\n%s", mode, len(lines), len(sample()), out)
		}
		for _, l := range lines {
			if !plainLine.MatchString(l) {
				t.Errorf("%s: line %q is not a timestamped event line", mode, l)
			}
		}
		for _, want := range []string{
			"2026-01-02T03:04:05Z [-] 3 phases: order → install → bootstrap",
			"2026-01-02T03:04:08Z [order] done in 3.2s",
			"[install] waiting for OS install (timeout 45m)",
			"2026-01-02T03:16:12Z [install] waiting for OS install: installing (12m04s / 45m)",
			"[install] OS install failed (attempt 2): 503 Service Unavailable; retrying in 4.0s",
			"[install] OS install: ready after 14m57s",
			"[install] server reachable ip=203.0.113.7",
			"[bootstrap] skipped: already bootstrapped",
			"[bootstrap] failed after 2.0s: etcd never healthy",
			"[cleanup] cleaning up 2 resource(s), newest first",
			"[cleanup] removed DNS record k8s.example.com",
			"[cleanup] could not remove Scaleway server 42 in fr-par-2: still locked",
			"[cleanup] LEFT BEHIND: Scaleway server 42 in fr-par-2; remove with: scw baremetal server delete 42 zone=fr-par-2",
			"[cleanup] kept token abc (kept because of --keep-on-failure); remove with: tctl tokens rm abc",
			"[cleanup] cleanup incomplete: 1 resource(s) remain",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output lacks %q:\n%s", mode, want, out)
			}
		}
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()
	events := sample()
	out := render(progress.JSON, true, redact.New(), events)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(events) {
		t.Fatalf("%d lines for %d events:\n%s", len(lines), len(events), out)
	}
	for i, l := range lines {
		var obj map[string]any
		if err := json.Unmarshal([]byte(l), &obj); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i, err, l)
		}
		e := events[i]
		if obj["type"] != string(e.Type) {
			t.Errorf("line %d type = %v, want %s", i, obj["type"], e.Type)
		}
		ts, err := time.Parse(time.RFC3339Nano, obj["time"].(string))
		if err != nil || !ts.Equal(e.Time) {
			t.Errorf("line %d time = %v, want %v", i, obj["time"], e.Time)
		}
		if e.Phase != "" && obj["phase"] != e.Phase {
			t.Errorf("line %d phase = %v, want %s", i, obj["phase"], e.Phase)
		}
		if e.Message != "" && obj["message"] != e.Message {
			t.Errorf("line %d message = %v, want %s", i, obj["message"], e.Message)
		}
		// Fields are flattened to the top level.
		for k := range e.Fields {
			if _, ok := obj[k]; !ok {
				t.Errorf("line %d lacks field %q: %s", i, k, l)
			}
		}
	}
	var state map[string]any
	_ = json.Unmarshal([]byte(lines[6]), &state)
	want := map[string]any{"type": "state", "phase": "install", "wait": "OS install", "state": "installing", "elapsed": 724.0, "timeout": 2700.0}
	for k, v := range want {
		if state[k] != v {
			t.Errorf("state line %s = %v, want %v", k, state[k], v)
		}
	}
}

func TestTTY(t *testing.T) {
	t.Parallel()
	for _, mode := range []progress.Mode{progress.TTY, progress.Auto} {
		out := render(mode, true, redact.New(), sample())
		for _, want := range []string{
			"✓ order (3.2s)",
			"✓ install (14m58s)",
			"– bootstrap: skipped, already bootstrapped",
			"✗ bootstrap (2.0s): etcd never healthy",
			"[2/3] install — waiting for OS install: installing (",
			" / 45m)",
			"created Scaleway server 42 in fr-par-2",
			"↺ cleaning up 2 resource(s), newest first",
			"LEFT BEHIND: Scaleway server 42 in fr-par-2; remove with: scw baremetal server delete 42 zone=fr-par-2",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output lacks %q:\n%s", mode, want, out)
			}
		}
		// The live line is cleared when the renderer closes.
		if !strings.HasSuffix(out, "\n") && !strings.HasSuffix(out, "\r\x1b[K") {
			t.Errorf("%s: output ends mid live line: %q", mode, out[max(0, len(out)-40):])
		}
	}
}

func TestSummaryBlock(t *testing.T) {
	t.Parallel()
	e := pipeline.Event{Type: pipeline.EventSummary, Time: t0, Message: "cluster demo is ready", Fields: map[string]any{
		"endpoint": "https://k8s.example.com:6443",
		"servers":  []string{"42"},
		"records":  []map[string]any{{"name": "k8s.example.com", "ip": "203.0.113.7"}},
	}}
	want := "cluster demo is ready\n  endpoint:              https://k8s.example.com:6443\n  records (1)\n    - ip=203.0.113.7 name=k8s.example.com\n  servers (1)\n    - 42\n"
	if got := progress.Block(e); got != want {
		t.Errorf("Block =\n%s\nwant\n%s", got, want)
	}
	for _, mode := range []progress.Mode{progress.Plain, progress.TTY} {
		if out := render(mode, true, nil, []pipeline.Event{e}); !strings.Contains(out, strings.TrimSuffix(want, "\n")) {
			t.Errorf("%s renders the summary as:\n%s", mode, out)
		}
	}
}

// TestRedactionInEveryRenderer puts registered secrets everywhere an event
// can carry text; no renderer may print them, whatever their characters.
func TestRedactionInEveryRenderer(t *testing.T) {
	t.Parallel()
	secrets := []string{
		"plain-secret-ZEBRA-1234",
		`q"uo\te&<html>-secret-5678`,
		"-----BEGIN TELEPORT IDENTITY-----\nMIIleakyidentity\n-----END TELEPORT IDENTITY-----",
	}
	for _, s := range secrets {
		r := redact.New()
		r.Add(s)
		events := []pipeline.Event{
			{Type: pipeline.EventPlan, Time: t0, Fields: map[string]any{"phases": []string{"login " + s}}},
			{Type: pipeline.EventPhaseStart, Time: t0, Phase: "resolve " + s, Fields: map[string]any{"index": 0, "total": 1}},
			{Type: pipeline.EventWait, Time: t0, Phase: "p", Fields: map[string]any{"wait": "token " + s, "timeout": 60.0}},
			{Type: pipeline.EventState, Time: t0, Phase: "p", Fields: map[string]any{"wait": "token " + s, "state": s, "elapsed": 1.0, "timeout": 60.0}},
			{Type: pipeline.EventInfo, Time: t0, Phase: "p", Message: "got " + s, Fields: map[string]any{"token": s, "list": []string{s}}},
			{Type: pipeline.EventRetry, Time: t0, Phase: "p", Message: "401 for key " + s, Fields: map[string]any{"attempt": 1, "next": 1.0}},
			{Type: pipeline.EventPhaseFailed, Time: t0, Phase: "p", Message: "rejected " + s, Fields: map[string]any{"duration": 1.0}},
			{Type: pipeline.EventUndoStep, Time: t0, Phase: "cleanup", Fields: map[string]any{"resource": "x", "ok": false, "error": s}},
			{Type: pipeline.EventSummary, Time: t0, Message: "summary", Fields: map[string]any{"secret": s, "items": []map[string]any{{"k": s}}}},
		}
		for _, mode := range []progress.Mode{progress.Plain, progress.JSON, progress.TTY} {
			out := render(mode, true, r, events)
			for _, part := range strings.Split(s, "\n") {
				if strings.Contains(out, part) && !strings.HasPrefix(part, "-----") {
					t.Errorf("%s renderer leaks %q:\n%s", mode, part, out)
				}
			}
			if !strings.Contains(out, redact.Mask) {
				t.Errorf("%s renderer shows no mask at all:\n%s", mode, out)
			}
		}
	}
}

// TestRunnerToRenderers drives real runs through every renderer, including
// from concurrent goroutines inside a phase.
func TestRunnerToRenderers(t *testing.T) {
	t.Parallel()
	for _, mode := range []progress.Mode{progress.Plain, progress.JSON, progress.TTY} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			rd := progress.New(mode, &buf, redact.New(), true)
			rn := pipeline.Runner{Sink: rd, Phases: []pipeline.Phase{
				pipeline.PhaseFunc("install", func(ctx context.Context, r *pipeline.Run) error {
					w := r.Wait("OS install", 45*time.Minute, time.Second)
					var wg sync.WaitGroup
					for range 8 {
						wg.Add(1)
						go func() { defer wg.Done(); w.State("installing") }()
					}
					wg.Wait()
					w.Done()
					r.Undo(pipeline.UndoStep{Resource: "server 42", Command: "scw delete 42", Do: func(context.Context) error { return nil }})
					return errors.New("etcd never healthy")
				}),
			}}
			_, err := rn.Execute(context.Background())
			rd.Close()
			if err == nil {
				t.Fatal("want the failure")
			}
			out := buf.String()
			for _, want := range []string{"OS install", "etcd never healthy", "server 42"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if mode == progress.JSON {
				for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
					if !json.Valid([]byte(l)) {
						t.Errorf("invalid JSON line %q", l)
					}
				}
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{0, "0.0s"},
		{3200 * time.Millisecond, "3.2s"},
		{59 * time.Second, "59.0s"},
		{12*time.Minute + 4*time.Second, "12m04s"},
		{62 * time.Minute, "1h02m"},
	}
	for _, tt := range tests {
		if got := progress.FormatDuration(tt.d); got != tt.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestPlainKeepsOneLinePerEvent(t *testing.T) {
	t.Parallel()
	r := redact.New()
	pem := "-----BEGIN IDENTITY-----\nMIIleakyline\n-----END IDENTITY-----"
	r.Add(pem)
	events := []pipeline.Event{
		{Type: pipeline.EventPhaseFailed, Time: t0, Phase: "verify", Message: "two things failed:\nfirst\r\nsecond", Fields: map[string]any{"duration": 1.0}},
		{Type: pipeline.EventWarn, Time: t0, Phase: "verify", Message: "remote said \x1b[31mred\x1b[0m\tand a bell\a"},
		{Type: pipeline.EventInfo, Time: t0, Phase: "verify", Message: "identity " + pem},
	}
	out := render(progress.Plain, false, r, events)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(events) {
		t.Fatalf("%d lines for %d events:\n%s", len(lines), len(events), out)
	}
	for _, l := range lines {
		if !plainLine.MatchString(l) {
			t.Errorf("line %q is not a timestamped event line", l)
		}
		for _, c := range l {
			if c < 0x20 && c != '\t' || c == 0x7f {
				t.Errorf("control character %q in %q", c, l)
			}
		}
	}
	if !strings.Contains(out, "first") || !strings.Contains(out, "second") || !strings.Contains(out, "red") {
		t.Errorf("text lost:\n%s", out)
	}
	if strings.Contains(out, "MIIleakyline") || !strings.Contains(out, redact.Mask) {
		t.Errorf("multi-line secret not masked:\n%s", out)
	}
}
