package progress

import (
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/redact"
)

// jsonSink writes one JSON object per event and line: type, time, phase,
// message and the event's fields at the top level.
type jsonSink struct {
	mu sync.Mutex
	w  io.Writer
}

func newJSON(w io.Writer, _ *redact.Redactor) *jsonSink { return &jsonSink{w: w} }

func (j *jsonSink) Emit(e pipeline.Event) {
	obj := make(map[string]any, len(e.Fields)+4)
	for k, v := range e.Fields {
		obj[k] = v
	}
	obj["type"] = e.Type
	obj["time"] = e.Time.UTC().Format(time.RFC3339Nano)
	if e.Phase != "" {
		obj["phase"] = e.Phase
	}
	if e.Message != "" {
		obj["message"] = e.Message
	}
	b, err := json.Marshal(obj)
	if err != nil {
		b, _ = json.Marshal(map[string]any{"type": "error", "message": "event could not be encoded: " + err.Error()})
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	_, _ = j.w.Write(append(b, '\n'))
}

func (j *jsonSink) Close() {}
