// Package emulator is an in-process Proxmox VE API for tests and the sandbox.
// It answers in PVE's own wire shapes ({"data": …} envelopes, errors in the
// HTTP reason phrase, {"errors": {param: message}} for refused parameters,
// UPID task IDs polled through the task status endpoint), authenticates
// with tickets + CSRF tokens or API tokens, and checks every parameter of
// every request against an extract of the published API description, so a
// misspelled option fails here as it would on a real node. It keeps state:
// users, tokens and ACLs (with the description's permission checks), the
// node's network with pending changes until applied, the datacenter and
// node firewalls (whose DROP policy really drops the operator's requests),
// storages with their contents, download-url tasks and QEMU VMs.
package emulator

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

// Fault points. Kinds: error answers 500 with a message in the reason phrase
// (PVE's way), unavailable 503, ratelimit 429 with Retry-After (PVE has no
// rate limit; the kind exists for the fault matrix), hang withholds the
// answer. never makes the operation's task run forever where it has one
// (network apply, download-url, VM create/start), and hangs otherwise.
const (
	FaultLogin    = "proxmox.login"        // POST /access/ticket
	FaultAccess   = "proxmox.access"       // users, tokens, ACLs, passwords (writes)
	FaultNetwork  = "proxmox.network"      // interface changes and applying them
	FaultFirewall = "proxmox.firewall"     // firewall options and rules (writes)
	FaultIPSet    = "proxmox.ipset"        // datacenter IP sets and their entries (writes)
	FaultStorage  = "proxmox.storage"      // storage configuration and content changes
	FaultDownload = "proxmox.download-url" // download-url (never: the download never ends)
	FaultQemu     = "proxmox.qemu"         // VM create, config, resize, start, stop, delete
	FaultRead     = "proxmox.read"         // every GET (status polls, listings)
)

// FaultPoints lists every point with what it hits, for --sandbox-fault list.
var FaultPoints = []struct{ Point, What string }{
	{FaultLogin, "Proxmox API login (ticket)"},
	{FaultAccess, "Proxmox users, API tokens, ACLs and password changes"},
	{FaultNetwork, "Proxmox network changes and applying them (never: apply never ends)"},
	{FaultFirewall, "Proxmox firewall options and rules"},
	{FaultIPSet, "Proxmox firewall IP sets (the operator's address for the host's forwards)"},
	{FaultStorage, "Proxmox storage configuration and content"},
	{FaultDownload, "Proxmox download-url (never: the download never ends)"},
	{FaultQemu, "Proxmox VM create/config/start/stop/delete (never: the task never ends)"},
	{FaultRead, "Proxmox API reads (status, listings, task polls)"},
}

// Defaults.
const (
	DefaultNode    = "pve"
	DefaultVersion = "9.1.1"
	// APIPort is where pveproxy listens; the firewall model filters on it.
	APIPort = 8006
)

// Delays are how long tasks take (before completing); zero means at once.
type Delays struct {
	NetworkApply time.Duration
	Download     time.Duration
	VMCreate     time.Duration
	VMStart      time.Duration
	VMStop       time.Duration
}

// Options configure New.
type Options struct {
	// Node is the node's name (the host name); DefaultNode when empty.
	Node string
	// Version is the PVE version (e.g. "9.1.1", "8.3.2"); DefaultVersion when empty.
	// The import content type exists from 8.4 on.
	Version string
	// RootPasswordHash is root@pam's password as a crypt(3) bcrypt hash, as
	// cloud-init left it in /etc/shadow; empty refuses every root login.
	RootPasswordHash string
	// PublicCIDR is vmbr0's address, the host's public one (default 203.0.113.10/24).
	PublicCIDR string
	// Client says which public address a request comes from, so the
	// firewall can judge it; nil means every request comes from Operator.
	Client func(*http.Request) netip.Addr
	// Operator is the default client address (see Client).
	Operator netip.Addr
	Delays   Delays
	// Faults lets the sandbox share one fault set across emulators; nil makes a new one.
	Faults *emulator.Faults
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// OnPower is told when a VM starts or stops (its start or stop task
	// settled): the sandbox boots what the VM's disk and cidata volume
	// hold. Called on a goroutine of its own, never under the node's lock.
	OnPower func(vm Guest, running bool)
}

// Guest is a VM as OnPower sees it: its config and the bytes of its
// cidata volume (ide2), what a guest finds at first boot.
type Guest struct {
	VMID   int
	Name   string
	Config map[string]string
	CIData []byte
}

// Emulator is a running Proxmox VE API. Safe for concurrent use.
type Emulator struct {
	opts     Options
	schema   *schema
	faults   *emulator.Faults
	counters *emulator.Counters
	srv      *emulator.HTTPServer
	now      func() time.Time

	mu       sync.Mutex
	st       *state
	tickets  map[string]session
	verified map[string]bool // hash+password pairs already checked
	pidSeq   int
	released bool
}

type session struct {
	user    string
	csrf    string
	expires time.Time
}

// New starts the emulator over HTTPS (pveproxy's self-signed certificate is
// modelled by httptest's) on 127.0.0.1 with a kernel-chosen port.
func New(opts Options) (*Emulator, error) {
	sc, err := loadSchema()
	if err != nil {
		return nil, err
	}
	if opts.Node == "" {
		opts.Node = DefaultNode
	}
	if opts.Version == "" {
		opts.Version = DefaultVersion
	}
	if !opts.Operator.IsValid() {
		opts.Operator = netip.MustParseAddr("198.51.100.7")
	}
	e := &Emulator{opts: opts, schema: sc, faults: opts.Faults, counters: emulator.NewCounters(),
		now: opts.Now, tickets: map[string]session{}, verified: map[string]bool{}}
	if e.faults == nil {
		e.faults = emulator.NewFaults()
	}
	if e.now == nil {
		e.now = time.Now
	}
	e.st = newState(opts.Node, opts.Version, opts.RootPasswordHash, e.now())
	if pfx, err := netip.ParsePrefix(opts.PublicCIDR); err == nil {
		v := e.st.network["vmbr0"]
		v.CIDR, v.Address, v.Netmask = pfx.String(), pfx.Addr().String(), fmt.Sprint(pfx.Bits())
	}
	e.srv = emulator.StartHTTPS(http.HandlerFunc(e.serve))
	return e, nil
}

// URL is the API base URL, https://127.0.0.1:PORT/api2/json.
func (e *Emulator) URL() string { return e.srv.URL() + "/api2/json" }

// HTTPClient trusts the emulator's certificate.
func (e *Emulator) HTTPClient() *http.Client { return e.srv.Client() }

// CertificatePEM is the certificate HTTPClient trusts, for a client in
// another process.
func (e *Emulator) CertificatePEM() []byte { return e.srv.CertificatePEM() }

// Node is the node's name.
func (e *Emulator) Node() string { return e.opts.Node }

// Counters counts requests per operation ("POST /nodes/{node}/network").
func (e *Emulator) Counters() *emulator.Counters { return e.counters }

// Faults is the fault set consulted at every fault point.
func (e *Emulator) Faults() *emulator.Faults { return e.faults }

// Close releases hanging requests and stops the server.
func (e *Emulator) Close() { e.srv.Close() }

// SetRootPasswordHash replaces root@pam's password hash, as a reinstall would.
func (e *Emulator) SetRootPasswordHash(hash string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.users["root@pam"].hash = hash
}

// pveError is an error answer: PVE puts the message in the reason phrase.
type pveError struct {
	status int
	reason string
	errors map[string]string
}

func (p *pveError) Error() string { return fmt.Sprintf("%d %s", p.status, p.reason) }

func errf(status int, format string, a ...any) *pveError {
	return &pveError{status: status, reason: fmt.Sprintf(format, a...)}
}

// request is one authenticated, validated call.
type request struct {
	method string
	op     *operation
	params map[string]string
	user   string // the user, for tokens the token's user
	token  string // full token ID when authenticated by token
	upload []byte
	r      *http.Request
	// never: an injected fault makes this request's task run forever.
	never bool
}

func (q *request) p(name string) string { return q.params[name] }

func (q *request) has(name string) bool { _, ok := q.params[name]; return ok }

func (q *request) flag(name string, def bool) bool {
	v, ok := q.params[name]
	if !ok {
		return def
	}
	return truthy(v)
}

func truthy(v string) bool {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func (e *Emulator) serve(w http.ResponseWriter, r *http.Request) {
	// Route on the escaped path: a volume ID in a path ("local:iso/x.iso",
	// sent as local:iso%2Fx.iso) is one segment, as PVE's router sees it.
	path, ok := strings.CutPrefix(r.URL.EscapedPath(), "/api2/json")
	if !ok {
		writeError(w, errf(http.StatusNotImplemented, "Method '%s %s' not implemented", r.Method, r.URL.Path))
		return
	}
	if !e.admitted(r) {
		// DROP: the packet is never answered; the client's deadline ends it.
		e.srv.Hang(r)
		return
	}
	op, pathParams, known := e.schema.match(r.Method, path)
	if op == nil {
		// Real PVE answers both an unknown path and a wrong method so.
		_ = known
		writeError(w, errf(http.StatusNotImplemented, "Method '%s %s' not implemented", r.Method, path))
		return
	}
	e.counters.Inc(op.Op)
	never := false
	if point := faultPoint(op); point != "" {
		if kind, hit := e.faults.Check(point); hit {
			if e.injectFault(w, r, op, kind) {
				return
			}
			never = true
		}
		if err := e.faults.Delay(r.Context(), point); err != nil {
			return
		}
	}
	q, perr := e.parse(r, op, pathParams)
	if perr != nil {
		writeError(w, perr)
		return
	}
	q.never = never
	data, perr := e.dispatch(q)
	if perr != nil {
		writeError(w, perr)
		return
	}
	emulator.WriteJSON(w, http.StatusOK, map[string]any{"data": data})
}

// injectFault answers with the fault; false means the fault is one the
// handler shows itself (a task that never ends).
func (e *Emulator) injectFault(w http.ResponseWriter, r *http.Request, op *operation, kind emulator.Kind) bool {
	switch kind {
	case emulator.Error:
		writeError(w, errf(http.StatusInternalServerError, "%s failed: injected fault", strings.ToLower(op.Op)))
	case emulator.Unavailable:
		writeError(w, errf(http.StatusServiceUnavailable, "Service Unavailable"))
	case emulator.RateLimit:
		w.Header().Set("Retry-After", "1")
		writeError(w, errf(http.StatusTooManyRequests, "Too Many Requests"))
	case emulator.Never:
		if op.method != http.MethodGet && taskOps[op.Op] != "" {
			return false
		}
		e.srv.Hang(r)
	default:
		e.srv.Hang(r)
	}
	return true
}

func faultPoint(op *operation) string {
	path := strings.TrimPrefix(op.Op, op.method+" ")
	switch {
	case op.Op == "POST /access/ticket":
		return FaultLogin
	case op.method == http.MethodGet:
		return FaultRead
	case strings.HasPrefix(path, "/access/"):
		return FaultAccess
	case strings.Contains(path, "/network"):
		return FaultNetwork
	case strings.HasPrefix(path, "/cluster/firewall/ipset"):
		return FaultIPSet
	case strings.Contains(path, "/firewall/"):
		return FaultFirewall
	case strings.HasSuffix(path, "/download-url"):
		return FaultDownload
	case strings.Contains(path, "/qemu"):
		return FaultQemu
	case strings.HasPrefix(path, "/storage") || strings.Contains(path, "/storage/"):
		return FaultStorage
	}
	return ""
}

// writeError answers like pveproxy: the message is the reason phrase of
// the status line, the body {"data":null} (plus "errors" for refused
// parameters). net/http cannot set a reason phrase, so the connection is
// taken over and the answer written by hand.
func writeError(w http.ResponseWriter, p *pveError) {
	body := map[string]any{"data": nil}
	if len(p.errors) > 0 {
		body["errors"] = p.errors
	}
	b, _ := json.Marshal(body)
	reason := strings.ReplaceAll(strings.ReplaceAll(p.reason, "\r", " "), "\n", " ")
	hj, ok := w.(http.Hijacker)
	if !ok {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(p.status)
		_, _ = w.Write(b)
		return
	}
	retry := w.Header().Get("Retry-After")
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\n", p.status, reason)
	fmt.Fprintf(buf, "Content-Type: application/json;charset=UTF-8\r\nContent-Length: %d\r\nConnection: close\r\n", len(b))
	if retry != "" {
		fmt.Fprintf(buf, "Retry-After: %s\r\n", retry)
	}
	buf.WriteString("\r\n")
	_, _ = buf.Write(b)
	_ = buf.Flush()
}

// parse authenticates the request, gathers its parameters (path, query,
// form or JSON body, multipart upload) and validates them.
func (e *Emulator) parse(r *http.Request, op *operation, pathParams map[string]string) (*request, *pveError) {
	q := &request{method: r.Method, op: op, params: map[string]string{}, r: r}
	for k, v := range r.URL.Query() {
		q.params[k] = strings.Join(v, "\x00")
	}
	if err := readBody(r, q); err != nil {
		return nil, errf(http.StatusBadRequest, "%v", err)
	}
	for k, v := range pathParams {
		dv, err := url.PathUnescape(v)
		if err != nil {
			dv = v
		}
		q.params[k] = dv
	}
	if op.Op != "POST /access/ticket" {
		if perr := e.authenticate(r, q); perr != nil {
			return nil, perr
		}
	}
	if errs := op.validate(q.params); errs != nil {
		return nil, &pveError{status: http.StatusBadRequest, reason: "Parameter verification failed.", errors: errs}
	}
	if op.Op != "POST /access/ticket" {
		if perr := e.authorize(q); perr != nil {
			return nil, perr
		}
	}
	return q, nil
}

func readBody(r *http.Request, q *request) error {
	if r.Body == nil {
		return nil
	}
	ct, ctParams, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "multipart/form-data":
		mr := multipart.NewReader(r.Body, ctParams["boundary"])
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			b, err := io.ReadAll(io.LimitReader(part, 64<<20))
			if err != nil {
				return err
			}
			if part.FileName() != "" {
				q.upload = b
				q.params[part.FormName()] = part.FileName()
				continue
			}
			q.params[part.FormName()] = string(b)
		}
	case "application/json":
		var body map[string]any
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil && err != io.EOF {
			return fmt.Errorf("malformed JSON body: %v", err)
		}
		for k, v := range body {
			switch x := v.(type) {
			case nil:
				continue
			case bool:
				q.params[k] = map[bool]string{true: "1", false: "0"}[x]
			case json.Number:
				q.params[k] = x.String()
			case string:
				q.params[k] = x
			default:
				b, _ := json.Marshal(x)
				q.params[k] = string(b)
			}
		}
	default:
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return err
		}
		vals, err := url.ParseQuery(string(b))
		if err != nil {
			return err
		}
		for k, v := range vals {
			q.params[k] = strings.Join(v, "\x00")
		}
	}
	return nil
}

// authenticate accepts a PVEAuthCookie ticket (with the CSRF token on
// writes) or a PVEAPIToken header, as pveproxy does.
func (e *Emulator) authenticate(r *http.Request, q *request) *pveError {
	if op := q.op; op.Permissions != nil && op.Permissions.User == "world" {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if auth := r.Header.Get("Authorization"); strings.HasPrefix(auth, "PVEAPIToken") {
		if !bool(q.op.AllowToken) {
			return errf(http.StatusUnauthorized, "API tokens are not allowed for this API call")
		}
		v := strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(auth, "PVEAPIToken"), "="))
		full, secret, _ := strings.Cut(v, "=")
		userID, tokenID, _ := strings.Cut(full, "!")
		u := e.st.users[userID]
		if u == nil || u.tokens[tokenID] == nil || !u.enabled || u.tokens[tokenID].secret != secret {
			return errf(http.StatusUnauthorized, "invalid token value!")
		}
		if t := u.tokens[tokenID]; t.expire > 0 && e.now().Unix() > t.expire {
			return errf(http.StatusUnauthorized, "API token '%s' expired", full)
		}
		q.user, q.token = userID, full
		return nil
	}
	ticket := ""
	if c, err := r.Cookie("PVEAuthCookie"); err == nil {
		ticket = c.Value
	}
	if ticket == "" {
		return errf(http.StatusUnauthorized, "No ticket")
	}
	s, ok := e.tickets[ticket]
	if !ok || e.now().After(s.expires) {
		return errf(http.StatusUnauthorized, "authentication failure")
	}
	if r.Method != http.MethodGet && r.Header.Get("CSRFPreventionToken") != s.csrf {
		return errf(http.StatusUnauthorized, "Permission denied - invalid csrf token")
	}
	q.user = s.user
	return nil
}

func (e *Emulator) login(q *request) (any, *pveError) {
	user := q.p("username")
	if realm := q.p("realm"); realm != "" && !strings.Contains(user, "@") {
		user += "@" + realm
	}
	pw := q.p("password")
	e.mu.Lock()
	// An existing ticket renews itself, as on a real node.
	if s, ok := e.tickets[pw]; ok && s.user == user && e.now().Before(s.expires) {
		defer e.mu.Unlock()
		return e.issueTicket(user), nil
	}
	u := e.st.users[user]
	hash := ""
	if u != nil && u.enabled {
		hash = u.hash
	}
	e.mu.Unlock()
	// bcrypt is slow on purpose: compare without holding up other requests.
	if hash == "" || !e.verify(hash, pw) {
		return nil, errf(http.StatusUnauthorized, "authentication failure")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.issueTicket(user), nil
}

// verify checks a password against a crypt hash, remembering successes so
// that a client logging in again (every retry of a wait does) costs one
// comparison, not one per attempt.
func (e *Emulator) verify(hash, pw string) bool {
	key := hash + "\x00" + pw
	e.mu.Lock()
	ok := e.verified[key]
	e.mu.Unlock()
	if ok {
		return true
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) != nil {
		return false
	}
	e.mu.Lock()
	e.verified[key] = true
	e.mu.Unlock()
	return true
}

func (e *Emulator) issueTicket(user string) map[string]any {
	ticket := fmt.Sprintf("PVE:%s:%X::%s", user, e.now().Unix(), randHex(64))
	csrf := fmt.Sprintf("%X:%s", e.now().Unix(), randHex(22))
	e.tickets[ticket] = session{user: user, csrf: csrf, expires: e.now().Add(2 * time.Hour)}
	return map[string]any{"username": user, "ticket": ticket, "CSRFPreventionToken": csrf,
		"cap": map[string]any{"access": map[string]int{}, "nodes": map[string]int{}}}
}

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// dispatch runs the handler for a validated request.
func (e *Emulator) dispatch(q *request) (any, *pveError) {
	if q.op.Op == "POST /access/ticket" {
		return e.login(q)
	}
	h, ok := handlers[q.op.Op]
	if !ok {
		return nil, errf(http.StatusNotImplemented, "Method '%s' not implemented", q.op.Op)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.settle()
	if q.has("node") && q.p("node") != e.opts.Node {
		return nil, errf(595, "hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known", q.p("node"), q.p("node"))
	}
	return h(e, q)
}

type handler func(e *Emulator, q *request) (any, *pveError)

// handlers is filled by the files that implement each area.
var handlers = map[string]handler{}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
