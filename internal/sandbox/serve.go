package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/config"
)

// A served sandbox is the same set of emulators kept running in a process
// of its own (`rawkode-cloud sandbox serve`), so that ordinary commands in
// other processes work on one world that persists between them. Most
// emulators are plain HTTP or gRPC servers on loopback that a config file
// can point at; what is not is described by the world endpoint:
//
//	GET  /v1/world      endpoints without a setting of their own, and the speed
//	GET  /v1/inventory  what the emulators hold (the Inventory type)
//	PUT  /v1/faults     replace the injected faults (a JSON list of POINT=KIND[@N])
//	GET  /v1/proxmox-host?ip=IP  where the emulated Proxmox host at IP serves
//	                    its API and the certificate to trust (404: no host)
//	GET  /v1/resolve?addr=HOST:PORT  the sandbox's DNS for a Teleport address
//	CONNECT host:port   the network between this machine and the servers: the
//	                    emulated Talos nodes are reached through it, as the
//	                    operator on the public internet, firewall and all
//
// The world endpoint answers on loopback only and holds no secret: every
// credential in the sandbox is fake and valid only against its emulators.

// World is what a served sandbox tells its clients.
type World struct {
	ScalewayURL   string  `json:"scaleway_url"`
	CloudflareURL string  `json:"cloudflare_url"`
	IPDetectURL   string  `json:"ipdetect_url"`
	Speed         float64 `json:"speed"`
}

// World describes the running sandbox for a client in another process.
func (s *Sandbox) World() World {
	return World{ScalewayURL: s.Scaleway.URL(), CloudflareURL: s.Cloudflare.URL(), IPDetectURL: s.IP.URL(), Speed: s.speed}
}

// ProxmoxHost is where a served sandbox's emulated Proxmox host answers:
// the in-process sandbox hands its own client the same URL and trust.
type ProxmoxHost struct {
	URL         string `json:"url"`
	Certificate string `json:"certificate"`
}

// Server serves a sandbox to other processes.
type Server struct {
	sb  *Sandbox
	ln  net.Listener
	srv *http.Server

	mu    sync.Mutex
	conns map[net.Conn]struct{} // relayed connections, closed on shutdown
}

// Serve starts answering on ln (a loopback listener) and returns at once.
func (s *Sandbox) Serve(ln net.Listener) *Server {
	sv := &Server{sb: s, ln: ln, conns: map[net.Conn]struct{}{}}
	sv.srv = &http.Server{Handler: sv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = sv.srv.Serve(ln) }()
	return sv
}

// URL is the address clients put in the sandbox-url setting.
func (sv *Server) URL() string { return "http://" + sv.ln.Addr().String() }

// Close stops serving and cuts every relayed connection.
func (sv *Server) Close() {
	_ = sv.srv.Close()
	sv.mu.Lock()
	for c := range sv.conns {
		c.Close()
	}
	sv.conns = map[net.Conn]struct{}{}
	sv.mu.Unlock()
}

func (sv *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodConnect:
		sv.relay(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/world":
		writeJSON(w, sv.sb.World())
	case r.Method == http.MethodGet && r.URL.Path == "/v1/inventory":
		writeJSON(w, sv.sb.Inventory())
	case r.Method == http.MethodPut && r.URL.Path == "/v1/faults":
		sv.setFaults(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/proxmox-host":
		h := sv.sb.Host(r.URL.Query().Get("ip"))
		if h == nil {
			http.Error(w, "no Proxmox host at that address", http.StatusNotFound)
			return
		}
		writeJSON(w, ProxmoxHost{URL: h.URL(), Certificate: string(h.CertificatePEM())})
	case r.Method == http.MethodGet && r.URL.Path == "/v1/resolve":
		writeJSON(w, map[string]string{"addr": sv.sb.resolveTeleport(r.URL.Query().Get("addr"))})
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (sv *Server) setFaults(w http.ResponseWriter, r *http.Request) {
	var specs []string
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&specs); err != nil {
		http.Error(w, "want a JSON list of POINT=KIND[@N]", http.StatusBadRequest)
		return
	}
	faults, err := ParseFaults(specs)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sv.sb.faults.Clear()
	points := make([]string, 0, len(faults))
	for p, f := range faults {
		sv.sb.faults.Set(p, f)
		points = append(points, p+"="+f.String())
	}
	sort.Strings(points)
	writeJSON(w, points)
}

// Dial errors cross the relay as a header, so that the client sees the
// same refused/unreachable errors an in-process sandbox (and the real
// network) gives: the Talos client tells a closed port by ECONNREFUSED.
const dialErrorHeader = "X-Sandbox-Dial-Error"

func (sv *Server) relay(w http.ResponseWriter, r *http.Request) {
	up, err := sv.sb.dial(r.Context(), r.Host)
	if err != nil {
		kind := "unreachable"
		if errors.Is(err, syscall.ECONNREFUSED) {
			kind = "refused"
		}
		w.Header().Set(dialErrorHeader, kind)
		http.Error(w, "dial "+r.Host+": "+kind, http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		http.Error(w, "relay unsupported", http.StatusInternalServerError)
		return
	}
	down, buf, err := hj.Hijack()
	if err != nil {
		up.Close()
		return
	}
	if !sv.track(down, up) {
		return
	}
	_, _ = down.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
	go func() {
		defer sv.untrack(down, up)
		done := make(chan struct{}, 2)
		go func() { _, _ = io.Copy(up, buf); done <- struct{}{} }()
		go func() { _, _ = io.Copy(down, up); done <- struct{}{} }()
		<-done
	}()
}

func (sv *Server) track(conns ...net.Conn) bool {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	for _, c := range conns {
		sv.conns[c] = struct{}{}
	}
	return true
}

func (sv *Server) untrack(conns ...net.Conn) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	for _, c := range conns {
		c.Close()
		delete(sv.conns, c)
	}
}

// relayDialer dials through a served sandbox's CONNECT relay.
func relayDialer(base string) func(ctx context.Context, addr string) (net.Conn, error) {
	host := strings.TrimPrefix(base, "http://")
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			return nil, fmt.Errorf("reach the served sandbox at %s (is 'rawkode-cloud sandbox serve' still running?): %w", base, err)
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetDeadline(dl)
		}
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", addr, addr)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil {
			c.Close()
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			c.Close()
			errno := syscall.EHOSTUNREACH
			if resp.Header.Get(dialErrorHeader) == "refused" {
				errno = syscall.ECONNREFUSED
			}
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errno}
		}
		_ = c.SetDeadline(time.Time{})
		if br.Buffered() > 0 {
			return &bufferedConn{Conn: c, r: br}, nil
		}
		return c, nil
	}
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// ConfigValues are the settings a client needs to use this sandbox: its
// endpoints and (fake) credentials, exactly what Apply sets, without the
// scaled waits (a client scales them itself from the world's speed).
func (s *Sandbox) ConfigValues(url string) map[string]string {
	cfg := config.New()
	s.Apply(cfg)
	out := map[string]string{config.SandboxURL: url}
	for _, name := range config.Names() {
		v := cfg.Value(name)
		if v.Source != config.FromSandbox || v.Raw == "" || scaledWait[name] || name == config.UndoTimeout ||
			name == config.ClusterName || name == config.CloudflareDNSName {
			continue
		}
		out[name] = v.Raw
	}
	return out
}
