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
// redraws one live line below them: spinner, current phase, every wait in
// progress with its last observed state (the install's status and the
// probe of the node run side by side for a quarter of an hour), and the
// elapsed/timeout counter of the oldest, ticking every 100ms so the user
// sees time move even when nothing changes for minutes.
type tty struct {
	mu     sync.Mutex
	w      io.Writer
	phase  string
	index  int
	total  int
	waits  []*liveWait // in the order they began
	frame  int
	live   bool
	width  int
	red    *redact.Redactor
	stop   chan struct{}
	done   chan struct{}
	closed sync.Once
}

// liveWait is one wait shown on the live line.
type liveWait struct {
	what    string
	state   string
	since   time.Time
	timeout time.Duration
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

func (t *tty) findWait(what string) int {
	for i, w := range t.waits {
		if w.what == what {
			return i
		}
	}
	return -1
}

// LiveLine composes the live line from its parts so that it fits width
// columns: the counter is never cut; the waits are first shown by their
// states alone, then cut with "…". Exported for tests.
func LiveLine(head string, waits []string, states []string, counter string, width int) string {
	if width <= 0 {
		width = 80
	}
	fits := func(s string) bool { return len([]rune(s)) <= width-1 }
	compose := func(body string) string {
		line := head
		if body != "" {
			line += " — waiting for " + body
		}
		if counter != "" {
			line += " " + counter
		}
		return line
	}
	full := make([]string, len(waits))
	short := make([]string, len(waits))
	for i := range waits {
		full[i], short[i] = waits[i], waits[i]
		if states[i] != "" {
			full[i] = waits[i] + ": " + states[i]
			short[i] = states[i]
		}
	}
	body := strings.Join(full, " · ")
	if line := compose(body); fits(line) || body == "" {
		if !fits(line) {
			return cut(line, width)
		}
		return line
	}
	body = strings.Join(short, " · ")
	if line := compose(body); fits(line) {
		return line
	}
	// Cut the body, not the counter: elapsed/timeout is what tells a long
	// wait from a hung one.
	room := width - 1 - len([]rune(compose(""))) - len([]rune(" — waiting for "))
	if room < 2 {
		return cut(compose(""), width)
	}
	return compose(cut(body, room+1))
}

// cut shortens s to at most width-1 columns, ending in "…".
func cut(s string, width int) string {
	r := []rune(s)
	if len(r) <= width-1 {
		return s
	}
	if width < 2 {
		return ""
	}
	return string(r[:width-2]) + "…"
}

func (t *tty) drawLive() {
	head := t.phase
	if t.total > 0 {
		head = fmt.Sprintf("[%d/%d] %s", t.index+1, t.total, t.phase)
	}
	var whats, states []string
	counter := ""
	for i, w := range t.waits {
		whats = append(whats, t.flat(w.what))
		states = append(states, t.flat(w.state))
		if i == 0 {
			// The oldest wait is the one holding the phase up longest.
			elapsed := FormatDuration(time.Since(w.since))
			if w.timeout > 0 {
				counter = fmt.Sprintf("(%s / %s)", elapsed, formatLimit(w.timeout))
			} else {
				counter = fmt.Sprintf("(%s)", elapsed)
			}
		}
	}
	width := t.width
	if width <= 0 {
		width = 80
	}
	// Redact before cutting (a cut secret no longer matches) and keep the
	// live line one line: "\r" can only erase the line the cursor is on.
	prefix := spinner[t.frame%len(spinner)] + " "
	text := prefix + LiveLine(t.flat(head), whats, states, counter, width-len([]rune(prefix)))
	fmt.Fprintf(t.w, "\r\033[K%s", text)
}

// flat redacts s and puts it on one line.
func (t *tty) flat(s string) string {
	return strings.Join(strings.Fields(t.red.String(s)), " ")
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
		t.phase, t.waits, t.live = e.Phase, nil, true
		if i, ok := f["index"].(int); ok {
			t.index = i
		}
		t.drawLive()
	case pipeline.EventPhaseDone:
		t.endLive()
		t.line(fmt.Sprintf("✓ %s (%s)", e.Phase, doneNote(f)))
	case pipeline.EventPhaseSkip:
		t.endLive()
		t.line(fmt.Sprintf("– %s: skipped, %s", e.Phase, e.Message))
	case pipeline.EventPhaseFailed:
		t.endLive()
		t.line(fmt.Sprintf("✗ %s (%s): %s", e.Phase, FormatDuration(seconds(f, "duration")), e.Message))
	case pipeline.EventWait:
		what := str(f, "wait")
		if i := t.findWait(what); i >= 0 {
			t.waits = append(t.waits[:i], t.waits[i+1:]...)
		}
		t.waits = append(t.waits, &liveWait{what: what, since: time.Now(), timeout: seconds(f, "timeout")})
		if t.live {
			t.drawLive()
		}
	case pipeline.EventState:
		if i := t.findWait(str(f, "wait")); i >= 0 {
			t.waits[i].state = str(f, "state")
			if t.live {
				t.drawLive()
			}
		}
	case pipeline.EventWaitDone:
		if i := t.findWait(str(f, "wait")); i >= 0 {
			t.waits = append(t.waits[:i], t.waits[i+1:]...)
		}
		t.line("    " + Describe(e))
	case pipeline.EventUndoStart:
		t.endLive()
		t.line("↺ " + Describe(e))
		// Cleanup gets its own live line: removing a server takes minutes.
		t.phase, t.total, t.waits, t.live = "cleanup", 0, nil, true
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
	blockFields(&b, "  ", e.Fields)
	return b.String()
}

// blockFields writes fields sorted by key at one indentation; a map of
// lists (one emulator's several kinds of resource) becomes a sub-block.
func blockFields(b *strings.Builder, indent string, fields map[string]any) {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch v := fields[k].(type) {
		case []map[string]any:
			fmt.Fprintf(b, "%s%s (%d)\n", indent, k, len(v))
			for _, item := range v {
				fmt.Fprintf(b, "%s  - %s\n", indent, itemLine(item))
			}
		case []string:
			fmt.Fprintf(b, "%s%s (%d)\n", indent, k, len(v))
			for _, item := range v {
				fmt.Fprintf(b, "%s  - %s\n", indent, item)
			}
		case map[string]any:
			fmt.Fprintf(b, "%s%s\n", indent, k)
			blockFields(b, indent+"  ", v)
		default:
			fmt.Fprintf(b, "%s%-22s %s\n", indent, k+":", FormatValue(k, v))
		}
	}
}

// itemLine renders one entry of a list in a block. An entry with a title
// (a phase's timing) reads "title: value (status)"; others are key=value.
func itemLine(item map[string]any) string {
	title, ok := item["phase"].(string)
	if !ok {
		return withFields("", item)
	}
	line := title + ": " + FormatValue("seconds", item["seconds"])
	var notes []string
	if st := str(item, "status"); st != "" && st != "ok" {
		notes = append(notes, st)
	}
	if ahead := str(item, "ahead_in"); ahead != "" {
		notes = append(notes, "done ahead during "+ahead)
	}
	if len(notes) > 0 {
		line += " (" + strings.Join(notes, ", ") + ")"
	}
	return line
}
