package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/redact"
)

// plain writes one timestamped line per event and never a control code, so
// logs and CI output stay readable.
type plain struct {
	mu sync.Mutex
	w  io.Writer
	r  *redact.Redactor
}

func newPlain(w io.Writer, r *redact.Redactor) *plain { return &plain{w: w, r: r} }

// oneLine keeps an event on its own line: multi-line messages (errors.Join)
// are joined with " | " and other control characters (ANSI codes from a
// remote error body) are dropped. Secrets are masked first, while a
// multi-line secret still reads as registered.
func (p *plain) oneLine(s string) string {
	s = p.r.String(s)
	s = strings.NewReplacer("\r\n", " | ", "\n", " | ", "\r", " | ").Replace(s)
	return strings.Map(func(c rune) rune {
		if c != '\t' && (c < 0x20 || c == 0x7f) {
			return -1
		}
		return c
	}, s)
}

func (p *plain) Emit(e pipeline.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := e.Time.UTC().Format(time.RFC3339)
	phase := e.Phase
	if phase == "" {
		phase = "-"
	}
	if e.Type == pipeline.EventSummary || e.Type == pipeline.EventInventory {
		fmt.Fprintf(p.w, "%s [%s] %s\n%s", ts, phase, e.Type, Block(e))
		return
	}
	fmt.Fprintf(p.w, "%s [%s] %s\n", ts, p.oneLine(phase), p.oneLine(Describe(e)))
}

func (p *plain) Close() {}
