// Package progress renders pipeline events for people and programs: a live
// display on a terminal, timestamped plain lines, or one JSON object per line.
// Every renderer writes through the run's redactor, so no secret value can
// reach the output whatever an event carries.
package progress

import (
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/redact"
)

// Renderer is a pipeline sink that must be closed to flush its display.
type Renderer interface {
	pipeline.Sink
	Close()
}

// Mode is the output format.
type Mode string

const (
	Auto  Mode = "auto"
	Plain Mode = "plain"
	JSON  Mode = "json"
	TTY   Mode = "tty"
)

// New returns the renderer for mode. Auto means a live display when w is a
// terminal and plain lines otherwise.
func New(mode Mode, w io.Writer, r *redact.Redactor, isTerminal bool) Renderer {
	rw := r.Writer(w)
	switch mode {
	case JSON:
		return newJSON(rw, r)
	case TTY:
		return newTTY(rw, r)
	case Auto:
		if isTerminal {
			return newTTY(rw, r)
		}
	}
	return newPlain(rw, r)
}

// FormatDuration prints durations the way people read them: 3.2s, 12m04s, 1h02m.
func FormatDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// formatLimit prints a timeout compactly: 45m, 90s, 1h30m.
func formatLimit(d time.Duration) string {
	s := d.Round(time.Second).String()
	s = strings.TrimSuffix(s, "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	if s == "" {
		return "0s"
	}
	return s
}

func seconds(f map[string]any, key string) time.Duration {
	switch v := f[key].(type) {
	case float64:
		return time.Duration(v * float64(time.Second))
	case time.Duration:
		return v
	case int:
		return time.Duration(v) * time.Second
	}
	return 0
}

func str(f map[string]any, key string) string {
	if v, ok := f[key]; ok && v != nil {
		return fmt.Sprint(v)
	}
	return ""
}

// Describe is the one-line human text for an event, shared by the plain and
// terminal renderers so they never disagree.
func Describe(e pipeline.Event) string {
	f := e.Fields
	switch e.Type {
	case pipeline.EventPlan:
		if ph, ok := f["phases"].([]string); ok {
			return fmt.Sprintf("%d phases: %s", len(ph), strings.Join(ph, " → "))
		}
	case pipeline.EventPhaseStart:
		return "started"
	case pipeline.EventPhaseDone:
		if ahead := str(f, "ahead_in"); ahead != "" {
			return fmt.Sprintf("done in %s: its work was done ahead, during %s", FormatDuration(seconds(f, "duration")), ahead)
		}
		return "done in " + FormatDuration(seconds(f, "duration"))
	case pipeline.EventPhaseSkip:
		return "skipped: " + e.Message
	case pipeline.EventPhaseFailed:
		return fmt.Sprintf("failed after %s: %s", FormatDuration(seconds(f, "duration")), e.Message)
	case pipeline.EventWait:
		if limit := seconds(f, "timeout"); limit > 0 {
			return fmt.Sprintf("waiting for %s (timeout %s)", str(f, "wait"), formatLimit(limit))
		}
		return "waiting for " + str(f, "wait")
	case pipeline.EventState:
		counter := FormatDuration(seconds(f, "elapsed"))
		if limit := seconds(f, "timeout"); limit > 0 {
			counter += " / " + formatLimit(limit)
		}
		return fmt.Sprintf("waiting for %s: %s (%s)", str(f, "wait"), str(f, "state"), counter)
	case pipeline.EventWaitDone:
		return fmt.Sprintf("%s: ready after %s", str(f, "wait"), FormatDuration(seconds(f, "elapsed")))
	case pipeline.EventRetry:
		what := str(f, "wait")
		if what == "" {
			what = "call"
		}
		return fmt.Sprintf("%s failed (attempt %s): %s; retrying in %s", what, str(f, "attempt"), e.Message, FormatDuration(seconds(f, "next")))
	case pipeline.EventCreated:
		return "created " + str(f, "resource")
	case pipeline.EventUndoStart:
		return fmt.Sprintf("cleaning up %s resource(s), newest first", str(f, "steps"))
	case pipeline.EventUndoStep:
		if ok, _ := f["ok"].(bool); ok {
			if undone := str(f, "undone"); undone != "" {
				return undone
			}
			return "removed " + str(f, "resource")
		}
		return fmt.Sprintf("could not remove %s: %s", str(f, "resource"), str(f, "error"))
	case pipeline.EventUndoDone:
		if str(f, "remaining") == "0" {
			return "cleanup complete: nothing left behind"
		}
		return fmt.Sprintf("cleanup incomplete: %s resource(s) remain", str(f, "remaining"))
	case pipeline.EventKept:
		return fmt.Sprintf("kept %s (%s); remove with: %s", str(f, "resource"), e.Message, str(f, "command"))
	case pipeline.EventLeftover:
		return fmt.Sprintf("LEFT BEHIND: %s; remove with: %s", str(f, "resource"), str(f, "command"))
	}
	return withFields(e.Message, f)
}

// doneNote is the parenthesised part of a finished phase's line.
func doneNote(f map[string]any) string {
	d := FormatDuration(seconds(f, "duration"))
	if ahead := str(f, "ahead_in"); ahead != "" {
		return d + ", done ahead during " + ahead
	}
	return d
}

// FormatValue prints a field value for people: lists comma-separated
// ("none" when empty, never "[]"), durations in seconds readably.
func FormatValue(key string, v any) string {
	rv := reflect.ValueOf(v)
	if v == nil {
		return "none"
	}
	if rv.Kind() == reflect.Pointer {
		// A figure that may be unknown (*float64): its value, never an address.
		if rv.IsNil() {
			return "unknown"
		}
		return FormatValue(key, rv.Elem().Interface())
	}
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		if rv.Len() == 0 {
			return "none"
		}
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = FormatValue("", rv.Index(i).Interface())
		}
		return strings.Join(parts, ", ")
	case reflect.Map:
		if m, ok := v.(map[string]any); ok {
			return "{" + withFields("", m) + "}"
		}
	case reflect.Float64, reflect.Float32:
		if key == "seconds" || strings.HasSuffix(key, "_seconds") {
			return FormatDuration(time.Duration(rv.Float() * float64(time.Second)))
		}
	}
	if d, ok := v.(time.Duration); ok {
		return FormatDuration(d)
	}
	return fmt.Sprint(v)
}

// withFields appends key=value pairs in a stable order.
func withFields(msg string, f map[string]any) string {
	if len(f) == 0 {
		return msg
	}
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := []string{}
	if msg != "" {
		parts = append(parts, msg)
	}
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%s", k, FormatValue(k, f[k])))
	}
	return strings.Join(parts, " ")
}
