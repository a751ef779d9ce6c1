package progress

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/redact"
)

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// tty keeps finished phases as permanent lines (✓/✗ with durations) and
// redraws one live line below them: spinner, current phase, what is being
// awaited, the last observed state and elapsed/timeout, ticking every 100ms
// so the user sees time move even when nothing changes for minutes.
type tty struct {
	mu      sync.Mutex
	w       io.Writer
	phase   string
	index   int
	total   int
	wait    string
	state   string
	since   time.Time // when the current wait began
	timeout time.Duration
	frame   int
	live    bool
	width   int
	red     *redact.Redactor
	stop    chan struct{}
	done    chan struct{}
	closed  sync.Once
}

func newTTY(w io.Writer, r *redact.Redactor) *tty {
	t := &tty{w: w, red: r, stop: make(chan struct{}), done: make(chan struct{})}
	go t.tick()
	return t
}

func (t *tty) tick() {
	defer close(t.done)
	tk := time.NewTicker(100 * time.Millisecond)
	defer tk.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tk.C:
			t.mu.Lock()
			t.frame++
			if t.live {
				t.drawLive()
			}
			t.mu.Unlock()
		}
	}
}

// endLive erases the live line for good.
func (t *tty) endLive() {
	t.clearLive()
	t.live = false
}

// SetWidth tells the display how wide the terminal is: a live line longer
// than that would wrap, and "\r" could then no longer erase it.
func (t *tty) SetWidth(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.width = n
}

func (t *tty) clearLive() {
	if t.live {
		fmt.Fprint(t.w, "\r\033[K")
	}
}

func (t *tty) drawLive() {
	text := t.phase
	if t.total > 0 {
		text = fmt.Sprintf("[%d/%d] %s", t.index+1, t.total, t.phase)
	}
	if t.wait != "" {
		elapsed := time.Since(t.since)
		text += " — waiting for " + t.wait
		if t.state != "" {
			text += ": " + t.state
		}
		if t.timeout > 0 {
			text += fmt.Sprintf(" (%s / %s)", FormatDuration(elapsed), formatLimit(t.timeout))
		} else {
			text += fmt.Sprintf(" (%s)", FormatDuration(elapsed))
		}
	}
	// Redact before cutting (a cut secret no longer matches) and keep the
	// live line one line: "\r" can only erase the line the cursor is on.
	text = strings.Join(strings.Fields(t.red.String(text)), " ")
	text = spinner[t.frame%len(spinner)] + " " + text
	width := t.width
	if width <= 0 {
		width = 80
	}
	if r := []rune(text); len(r) > width-1 {
		text = string(r[:width-2]) + "…"
	}
	fmt.Fprintf(t.w, "\r\033[K%s", text)
}

// line prints a permanent line above the live one.
func (t *tty) line(s string) {
	t.clearLive()
	fmt.Fprintln(t.w, s)
	if t.live {
		t.drawLive()
	}
}

func (t *tty) Emit(e pipeline.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := e.Fields
	switch e.Type {
	case pipeline.EventPlan:
		if ph, ok := f["phases"].([]string); ok {
			t.total = len(ph)
		}
	case pipeline.EventPhaseStart:
		t.phase, t.wait, t.state, t.live = e.Phase, "", "", true
		if i, ok := f["index"].(int); ok {
			t.index = i
		}
		t.drawLive()
	case pipeline.EventPhaseDone:
		t.endLive()
		t.line(fmt.Sprintf("✓ %s (%s)", e.Phase, FormatDuration(seconds(f, "duration"))))
	case pipeline.EventPhaseSkip:
		t.endLive()
		t.line(fmt.Sprintf("– %s: skipped, %s", e.Phase, e.Message))
	case pipeline.EventPhaseFailed:
		t.endLive()
		t.line(fmt.Sprintf("✗ %s (%s): %s", e.Phase, FormatDuration(seconds(f, "duration")), e.Message))
	case pipeline.EventWait:
		t.wait, t.state, t.since, t.timeout = str(f, "wait"), "", time.Now(), seconds(f, "timeout")
		if t.live {
			t.drawLive()
		}
	case pipeline.EventState:
		if str(f, "wait") == t.wait {
			t.state = str(f, "state")
			if t.live {
				t.drawLive()
			}
		}
	case pipeline.EventWaitDone:
		t.line("    " + Describe(e))
		t.wait, t.state = "", ""
		if t.live {
			t.drawLive()
		}
	case pipeline.EventUndoStart:
		t.endLive()
		t.line("↺ " + Describe(e))
		// Cleanup gets its own live line: removing a server takes minutes.
		t.phase, t.total, t.wait, t.state, t.live = "cleanup", 0, "", "", true
		t.drawLive()
	case pipeline.EventUndoDone:
		t.endLive()
		t.line("    " + Describe(e))
	case pipeline.EventSummary, pipeline.EventInventory:
		t.line("\n" + strings.TrimRight(Block(e), "\n"))
	case pipeline.EventResult:
		// main prints the final verdict itself.
	default:
		t.line("    " + Describe(e))
	}
}

func (t *tty) Close() {
	t.closed.Do(func() {
		close(t.stop)
		<-t.done
		t.mu.Lock()
		defer t.mu.Unlock()
		t.clearLive()
		t.live = false
	})
}

// Block renders a summary or inventory event as an indented block.
func Block(e pipeline.Event) string {
	var b strings.Builder
	title := e.Message
	if title == "" {
		title = string(e.Type)
	}
	b.WriteString(title + "\n")
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch v := e.Fields[k].(type) {
		case []map[string]any:
			fmt.Fprintf(&b, "  %s (%d)\n", k, len(v))
			for _, item := range v {
				fmt.Fprintf(&b, "    - %s\n", withFields("", item))
			}
		case []string:
			fmt.Fprintf(&b, "  %s (%d)\n", k, len(v))
			for _, item := range v {
				fmt.Fprintf(&b, "    - %s\n", item)
			}
		default:
			fmt.Fprintf(&b, "  %-22s %v\n", k+":", v)
		}
	}
	return b.String()
}
