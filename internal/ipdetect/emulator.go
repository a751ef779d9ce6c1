package ipdetect

import (
	"net/http"
	"sync"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

// FaultPoint is the emulator's one fault point. Kinds: error answers 500,
// unavailable 503, ratelimit 429 with Retry-After, hang (and never) withholds
// the answer until the client gives up or the emulator closes.
const FaultPoint = "ipdetect"

// Emulator is a "what is my IP" service: every GET answers the configured
// text followed by a newline, like checkip.amazonaws.com. Safe for
// concurrent use.
type Emulator struct {
	faults   *emulator.Faults
	counters *emulator.Counters
	srv      *emulator.HTTPServer

	mu     sync.Mutex
	answer string
}

// NewEmulator starts a service on 127.0.0.1 answering addr.
func NewEmulator(addr string) *Emulator {
	return NewEmulatorWithFaults(addr, nil)
}

// NewEmulatorWithFaults is NewEmulator consulting a shared fault set (the
// sandbox's); nil makes a new one.
func NewEmulatorWithFaults(addr string, faults *emulator.Faults) *Emulator {
	if faults == nil {
		faults = emulator.NewFaults()
	}
	e := &Emulator{faults: faults, counters: emulator.NewCounters(), answer: addr}
	e.srv = emulator.StartHTTP(http.HandlerFunc(e.serve))
	return e
}

// URL is the service's URL, e.g. http://127.0.0.1:41234/ip.
func (e *Emulator) URL() string { return e.srv.URL() + "/ip" }

// SetAnswer changes what the service answers: an address, or anything else
// to emulate a broken service.
func (e *Emulator) SetAnswer(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.answer = s
}

// Counters counts requests under the operation name "ip".
func (e *Emulator) Counters() *emulator.Counters { return e.counters }

// Faults is the fault set consulted at FaultPoint.
func (e *Emulator) Faults() *emulator.Faults { return e.faults }

// Close releases hanging requests and stops the server.
func (e *Emulator) Close() { e.srv.Close() }

func (e *Emulator) serve(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("ip")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := e.faults.Delay(r.Context(), FaultPoint); err != nil {
		return
	}
	if kind, ok := e.faults.Check(FaultPoint); ok {
		switch kind {
		case emulator.Error:
			http.Error(w, "<html><body>500 Internal Server Error</body></html>", http.StatusInternalServerError)
			return
		case emulator.Unavailable:
			http.Error(w, "503 Service Unavailable", http.StatusServiceUnavailable)
			return
		case emulator.RateLimit:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "429 Too Many Requests", http.StatusTooManyRequests)
			return
		case emulator.Hang, emulator.Never:
			e.srv.Hang(r)
			return
		}
	}
	e.mu.Lock()
	answer := e.answer
	e.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(answer + "\n"))
}
