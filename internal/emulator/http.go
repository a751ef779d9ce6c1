package emulator

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"sync"
)

// HTTPServer is a loopback HTTP(S) server for an emulator. It differs from a
// bare httptest.Server in one way that matters for fault injection: handlers
// that "hang" are released when the server closes, so Close never deadlocks.
type HTTPServer struct {
	srv      *httptest.Server
	done     chan struct{}
	closeOne sync.Once
}

// StartHTTP serves h on 127.0.0.1 with a port chosen by the kernel.
func StartHTTP(h http.Handler) *HTTPServer {
	s := &HTTPServer{done: make(chan struct{})}
	s.srv = httptest.NewServer(h)
	return s
}

// StartHTTPS is StartHTTP over TLS with a self-signed certificate; use
// Client() for a client that trusts it.
func StartHTTPS(h http.Handler) *HTTPServer {
	s := &HTTPServer{done: make(chan struct{})}
	s.srv = httptest.NewTLSServer(h)
	return s
}

// URL is the base URL, e.g. http://127.0.0.1:41234 (no trailing slash).
func (s *HTTPServer) URL() string { return s.srv.URL }

// Client returns an HTTP client configured for this server (trusts its TLS certificate).
func (s *HTTPServer) Client() *http.Client { return s.srv.Client() }

// CertificatePEM is the TLS server's certificate (nil without TLS), for a
// client in another process to trust.
func (s *HTTPServer) CertificatePEM() []byte {
	c := s.srv.Certificate()
	if c == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// Hang blocks until the request is abandoned by its client or the server closes.
func (s *HTTPServer) Hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.done:
	}
}

// Done is closed when the server starts shutting down.
func (s *HTTPServer) Done() <-chan struct{} { return s.done }

// Close releases hanging handlers, then shuts the server down.
func (s *HTTPServer) Close() {
	s.closeOne.Do(func() {
		close(s.done)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

// WriteJSON writes v as a JSON body with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// HangCtx blocks until ctx ends or done closes; for gRPC emulators.
func HangCtx(ctx context.Context, done <-chan struct{}) {
	select {
	case <-ctx.Done():
	case <-done:
	}
}
