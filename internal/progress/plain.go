package progress

import (
	"fmt"
	"io"
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
}

func newPlain(w io.Writer, _ *redact.Redactor) *plain { return &plain{w: w} }

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
	fmt.Fprintf(p.w, "%s [%s] %s\n", ts, phase, Describe(e))
}

func (p *plain) Close() {}
