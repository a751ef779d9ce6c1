package progress

import (
	"encoding/json"
	"io"
	"reflect"
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
		obj[k] = emptyList(v)
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

// emptyList turns a nil slice into an empty one: a list with nothing in it
// is [] in JSON, never null, so that consumers can iterate without a check.
func emptyList(v any) any {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice && rv.IsNil() {
		return reflect.MakeSlice(rv.Type(), 0, 0).Interface()
	}
	return v
}
