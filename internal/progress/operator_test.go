package progress_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/progress"
	"github.com/rawkode/rawkode-cloud/internal/redact"
)

// A wait without a timeout of its own (cleanup's, bounded by the undo
// budget) shows no "timeout 0s" and no "/ 0s".
func TestWaitWithoutTimeoutShowsNoZeroLimit(t *testing.T) {
	t.Parallel()
	events := []pipeline.Event{
		{Type: pipeline.EventWait, Time: t0, Phase: "cleanup", Fields: map[string]any{"wait": "server 42 to be deleted", "timeout": 0.0}},
		{Type: pipeline.EventState, Time: t0, Phase: "cleanup", Fields: map[string]any{"wait": "server 42 to be deleted", "state": "deleting", "elapsed": 0.6, "timeout": 0.0}},
	}
	for _, mode := range []progress.Mode{progress.Plain, progress.TTY} {
		out := render(mode, true, redact.New(), events)
		if strings.Contains(out, "0s)") && strings.Contains(out, "/ 0s") || strings.Contains(out, "timeout 0s") {
			t.Errorf("%s shows a zero limit:\n%s", mode, out)
		}
		if !strings.Contains(out, "deleting (0.6s)") && mode == progress.Plain {
			t.Errorf("%s lacks the elapsed time alone:\n%s", mode, out)
		}
	}
}

// A phase whose work ran in the background earlier says so on its line.
func TestPhaseDoneAheadSaysSo(t *testing.T) {
	t.Parallel()
	events := []pipeline.Event{
		{Type: pipeline.EventPhaseStart, Time: t0, Phase: "Update DNS", Fields: map[string]any{"index": 3, "total": 7}},
		{Type: pipeline.EventPhaseDone, Time: t0, Phase: "Update DNS", Fields: map[string]any{"duration": 0.0, "ahead_in": "Wait for install and Talos"}},
	}
	if out := render(progress.TTY, true, redact.New(), events); !strings.Contains(out, "✓ Update DNS (0.0s, done ahead during Wait for install and Talos)") {
		t.Errorf("tty:\n%s", out)
	}
	if out := render(progress.Plain, false, redact.New(), events); !strings.Contains(out, "done in 0.0s: its work was done ahead, during Wait for install and Talos") {
		t.Errorf("plain:\n%s", out)
	}
}

// A cleanup step that restores (rather than removes) says so.
func TestUndoStepSaysWhatItDid(t *testing.T) {
	t.Parallel()
	e := pipeline.Event{Type: pipeline.EventUndoStep, Time: t0, Phase: "cleanup", Fields: map[string]any{
		"resource": "Cloudflare A record k8s.example.com → 203.0.113.7 (was 192.0.2.1)", "ok": true,
		"undone": "restored Cloudflare A record k8s.example.com to 192.0.2.1"}}
	if got := progress.Describe(e); got != "restored Cloudflare A record k8s.example.com to 192.0.2.1" {
		t.Errorf("Describe = %q", got)
	}
}

// Empty lists read "none" for people and [] for programs, never "[]" or
// null; figures that may be unknown print their value, never an address.
func TestFieldValuesForPeopleAndPrograms(t *testing.T) {
	t.Parallel()
	figure := 1.25
	events := []pipeline.Event{
		{Type: pipeline.EventInfo, Time: t0, Phase: "p", Message: "filled 0 setting(s)", Fields: map[string]any{"settings": []string(nil)}},
		{Type: pipeline.EventInfo, Time: t0, Phase: "p", Message: "found", Fields: map[string]any{"servers": []string{}, "ids": []string{"a", "b"}}},
		{Type: pipeline.EventInfo, Time: t0, Phase: "p", Message: "report", Fields: map[string]any{"known": &figure, "unknown": (*float64)(nil)}},
	}
	plain := render(progress.Plain, false, redact.New(), events)
	for _, want := range []string{"settings=none", "servers=none", "ids=a, b", "known=1.25", "unknown=unknown"} {
		if !strings.Contains(plain, want) {
			t.Errorf("plain lacks %q:\n%s", want, plain)
		}
	}
	if strings.Contains(plain, "[]") || strings.Contains(plain, "0x") || strings.Contains(plain, "<nil>") {
		t.Errorf("plain shows Go's own notation:\n%s", plain)
	}
	out := render(progress.JSON, false, redact.New(), events[:1])
	var ev map[string]any
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatal(err)
	}
	if list, ok := ev["settings"].([]any); !ok || len(list) != 0 {
		t.Errorf("settings = %#v, want []", ev["settings"])
	}
}

// The summary's numbers stay numbers in JSON and read well in a block.
func TestSummaryPhaseTimings(t *testing.T) {
	t.Parallel()
	e := pipeline.Event{Type: pipeline.EventSummary, Time: t0, Message: "cluster demo is up", Fields: map[string]any{
		"phases": []map[string]any{
			{"phase": "Order server", "seconds": 1.5, "status": "ok"},
			{"phase": "Update DNS", "seconds": 0.0, "status": "ok", "ahead_in": "Wait for install and Talos"},
		},
		"total_seconds": 754.2,
	}}
	block := progress.Block(e)
	for _, want := range []string{"- Order server: 1.5s\n", "- Update DNS: 0.0s (done ahead during Wait for install and Talos)", "total_seconds:         12m34s"} {
		if !strings.Contains(block, want) {
			t.Errorf("block lacks %q:\n%s", want, block)
		}
	}
}

// During the install the live line shows the install's status and the
// node probe side by side, and cuts the message rather than the counter.
func TestLiveLineShowsEveryWaitAndKeepsTheCounter(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	rd := progress.New(progress.TTY, &buf, redact.New(), true)
	rd.(interface{ SetWidth(int) }).SetWidth(100)
	install := "server 80059bce-c73a-4940-940a-2d63812097c4 delivery and OS install"
	probe := "Talos maintenance mode on 203.0.113.10"
	for _, e := range []pipeline.Event{
		{Type: pipeline.EventPlan, Time: t0, Fields: map[string]any{"phases": []string{"a", "b", "Wait for install and Talos"}}},
		{Type: pipeline.EventPhaseStart, Time: t0, Phase: "Wait for install and Talos", Fields: map[string]any{"index": 2, "total": 7}},
		{Type: pipeline.EventWait, Time: t0, Phase: "Wait for install and Talos", Fields: map[string]any{"wait": install, "timeout": 2700.0}},
		{Type: pipeline.EventWait, Time: t0, Phase: "Wait for install and Talos", Fields: map[string]any{"wait": probe, "timeout": 3900.0}},
		{Type: pipeline.EventState, Time: t0, Phase: "Wait for install and Talos", Fields: map[string]any{"wait": probe, "state": "unreachable (connection refused by the node, which still runs its installer)", "elapsed": 1.0, "timeout": 3900.0}},
		{Type: pipeline.EventState, Time: t0, Phase: "Wait for install and Talos", Fields: map[string]any{"wait": install, "state": "ready/installing", "elapsed": 1.0, "timeout": 2700.0}},
	} {
		rd.Emit(e)
	}
	out := buf.String()
	rd.Close()
	frames := strings.Split(out, "\r\x1b[K")
	last := frames[len(frames)-1]
	for _, want := range []string{"ready/installing", "unreachable", " / 45m)"} {
		if !strings.Contains(last, want) {
			t.Errorf("live line lacks %q: %q", want, last)
		}
	}
	if n := len([]rune(last)); n > 99 {
		t.Errorf("live line is %d columns wide, terminal 100: %q", n, last)
	}
}

func TestLiveLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		waits  []string
		states []string
		width  int
		want   string
	}{
		{"fits", []string{"OS install"}, []string{"installing"}, 80, "[3/7] wait — waiting for OS install: installing (1.0s / 45m)"},
		{"states alone", []string{"server 1234567890 delivery and OS install", "Talos maintenance mode on 203.0.113.10"}, []string{"ready/installing", "unreachable"}, 80,
			"[3/7] wait — waiting for ready/installing · unreachable (1.0s / 45m)"},
		{"cut body", []string{"a"}, []string{strings.Repeat("x", 200)}, 60, "[3/7] wait — waiting for xxxxxxxxxxxxxxxxxxxx… (1.0s / 45m)"},
	}
	for _, tt := range tests {
		got := progress.LiveLine("[3/7] wait", tt.waits, tt.states, "(1.0s / 45m)", tt.width)
		if got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
		if len([]rune(got)) > tt.width-1 {
			t.Errorf("%s: %d columns for width %d", tt.name, len([]rune(got)), tt.width)
		}
	}
}
