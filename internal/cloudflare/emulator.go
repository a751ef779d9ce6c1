package cloudflare

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

// Fault points understood by the emulator. Kinds: error answers 400 (a
// permanent Cloudflare error), unavailable answers 503, ratelimit answers 429
// with Retry-After, hang (and never) withholds the answer until the client
// gives up or the emulator closes; lost carries the request out first, then
// withholds the answer the same way (a record created or updated whose
// answer never came back).
const (
	FaultListRecords  = "cloudflare.list-records"  // GET  .../dns_records
	FaultUpsertRecord = "cloudflare.upsert-record" // POST .../dns_records and PUT .../dns_records/{id}
	FaultDeleteRecord = "cloudflare.delete-record" // DELETE .../dns_records/{id}
	// FaultPermissions' "deny" kind makes the token read-only in every
	// zone: the zone details list no #dns_records:edit, and writes answer
	// 403 with code 10000 ("Authentication error"), as Cloudflare does.
	FaultPermissions = "cloudflare.permissions"
)

// tokenID is the emulated token's identifier tag (not the secret).
const tokenID = "ed17574386854bf78a67040be0a770b0"

// Defaults used when EmulatorOptions leaves them empty; the sandbox prints
// them so an operator can point curl at the emulator.
const (
	DefaultEmulatorToken = "sandbox-cloudflare-token"
	DefaultZoneID        = "023e105f4ecef8ad9ca31a8372d0c353"
	DefaultZoneName      = "example.com"
)

// apiPrefix is where Cloudflare serves the v4 API; URL() includes it so the
// emulator's URL is a drop-in Config.BaseURL.
const apiPrefix = "/client/v4"

// Zone is one DNS zone served by the emulator.
type Zone struct {
	ID   string
	Name string
}

// EmulatorOptions configure NewEmulator. The zero value serves one zone
// (DefaultZoneID, DefaultZoneName) to DefaultEmulatorToken.
type EmulatorOptions struct {
	// Token is the only API token accepted (Authorization: Bearer).
	Token string
	// Zones are the zones that exist; records may only live in these.
	Zones []Zone
	// Records are seeded as if created before the run; empty IDs are generated
	// and an empty ZoneID means the first zone.
	Records []Record
	// RetryAfter is advertised on injected 429s, rounded up to whole seconds
	// like the real header; default 1s.
	RetryAfter time.Duration
	// Faults lets the sandbox share one fault set across emulators; nil makes a new one.
	Faults *emulator.Faults
}

// Emulator is an in-process Cloudflare v4 API for DNS records: real JSON
// envelopes, real error codes, pagination, bearer-token check, fault and
// latency injection. Safe for concurrent use.
type Emulator struct {
	token      string
	retryAfter time.Duration
	faults     *emulator.Faults
	counters   *emulator.Counters
	srv        *emulator.HTTPServer

	mu    sync.Mutex
	zones map[string]*emuZone
	seq   int // creation order, so listings are stable like the real API's
}

type emuZone struct {
	Zone
	records map[string]*emuRecord
}

type emuRecord struct {
	Record
	seq      int
	created  time.Time
	modified time.Time
}

// NewEmulator starts the emulator on 127.0.0.1 with a kernel-chosen port. It
// panics on a seeded record that the real API would refuse, because that is
// a bug in the caller's fixture, not a runtime condition.
func NewEmulator(opts EmulatorOptions) *Emulator {
	e := &Emulator{
		token:      opts.Token,
		retryAfter: opts.RetryAfter,
		faults:     opts.Faults,
		counters:   emulator.NewCounters(),
		zones:      map[string]*emuZone{},
	}
	if e.token == "" {
		e.token = DefaultEmulatorToken
	}
	if e.retryAfter <= 0 {
		e.retryAfter = time.Second
	}
	if e.faults == nil {
		e.faults = emulator.NewFaults()
	}
	zones := opts.Zones
	if len(zones) == 0 {
		zones = []Zone{{ID: DefaultZoneID, Name: DefaultZoneName}}
	}
	for _, z := range zones {
		z.Name = normalizeName(z.Name)
		if z.ID == "" {
			z.ID = newID()
		}
		e.zones[z.ID] = &emuZone{Zone: z, records: map[string]*emuRecord{}}
	}
	for _, r := range opts.Records {
		if r.ZoneID == "" {
			r.ZoneID = zones[0].ID
		}
		if _, err := e.Seed(r); err != nil {
			panic(fmt.Sprintf("cloudflare emulator: seed record %s: %v", r.Name, err))
		}
	}
	e.srv = emulator.StartHTTP(e.routes())
	return e
}

// URL is the API base URL (…/client/v4), ready for Config.BaseURL.
func (e *Emulator) URL() string { return e.srv.URL() + apiPrefix }

// Token is the accepted API token.
func (e *Emulator) Token() string { return e.token }

// Zones lists the served zones, sorted by name.
func (e *Emulator) Zones() []Zone {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Zone, 0, len(e.zones))
	for _, z := range e.zones {
		out = append(out, z.Zone)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// AddZone serves one more zone and returns it; a zone of that name that
// exists already is returned as it is. (The sandbox adds the proxmox
// topology's domain, whose records must live in a zone of that name.)
func (e *Emulator) AddZone(z Zone) Zone {
	e.mu.Lock()
	defer e.mu.Unlock()
	z.Name = normalizeName(z.Name)
	for _, have := range e.zones {
		if have.Name == z.Name {
			return have.Zone
		}
	}
	if z.ID == "" {
		z.ID = newID()
	}
	e.zones[z.ID] = &emuZone{Zone: z, records: map[string]*emuRecord{}}
	return z
}

// Counters counts requests per operation: list-records, get-record,
// create-record, update-record, delete-record.
func (e *Emulator) Counters() *emulator.Counters { return e.counters }

// Faults is the fault set consulted at every fault point.
func (e *Emulator) Faults() *emulator.Faults { return e.faults }

// Close releases hanging requests and stops the server.
func (e *Emulator) Close() { e.srv.Close() }

// Records is the inventory: every record in every zone, in creation order.
func (e *Emulator) Records() []Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	var all []*emuRecord
	for _, z := range e.zones {
		for _, r := range z.records {
			all = append(all, r)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].seq < all[j].seq })
	out := make([]Record, len(all))
	for i, r := range all {
		out[i] = r.Record.clone()
	}
	return out
}

// Seed adds a record directly (no request counted, no fault consulted), as
// if someone had created it before the run. It applies the API's validation.
func (e *Emulator) Seed(r Record) (Record, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	z, ok := e.zones[r.ZoneID]
	if !ok {
		return Record{}, fmt.Errorf("unknown zone %q", r.ZoneID)
	}
	in := recordInput{Name: r.Name, Type: r.Type, Content: r.Content, TTL: r.TTL, Proxied: r.Proxied,
		Comment: r.Comment, Tags: r.Tags, Settings: recordSettings{IPv4Only: r.IPv4Only, IPv6Only: r.IPv6Only}}
	if in.TTL == 0 {
		in.TTL = 1
	}
	rec, apiErr := e.validate(z, in, "")
	if apiErr != nil {
		return Record{}, fmt.Errorf("%s", apiErr.Errors[0].Message)
	}
	if r.ID != "" {
		rec.ID = r.ID
	}
	e.insert(z, rec)
	return rec.Record.clone(), nil
}

func (e *Emulator) insert(z *emuZone, rec *emuRecord) {
	e.seq++
	rec.seq = e.seq
	now := time.Now().UTC()
	rec.created, rec.modified = now, now
	z.records[rec.ID] = rec
}

func (e *Emulator) routes() http.Handler {
	mux := http.NewServeMux()
	base := apiPrefix + "/zones/{zone}/dns_records"
	mux.HandleFunc("GET "+base, e.op("list-records", FaultListRecords, e.list))
	mux.HandleFunc("POST "+base, e.op("create-record", FaultUpsertRecord, e.create))
	mux.HandleFunc("GET "+base+"/{id}", e.op("get-record", "", e.get))
	mux.HandleFunc("PUT "+base+"/{id}", e.op("update-record", FaultUpsertRecord, e.update))
	mux.HandleFunc("DELETE "+base+"/{id}", e.op("delete-record", FaultDeleteRecord, e.remove))
	mux.HandleFunc("GET "+apiPrefix+"/user/tokens/verify", func(w http.ResponseWriter, r *http.Request) {
		e.counters.Inc("verify-token")
		if !e.authorized(w, r) {
			return
		}
		writeResult(w, map[string]any{"id": tokenID, "status": "active"})
	})
	mux.HandleFunc("GET "+apiPrefix+"/zones/{zone}", e.op("get-zone", "", e.zone))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErrors(w, http.StatusNotFound, wireError{Code: 7000, Message: "No route for that URI"})
	})
	return mux
}

// handler serves one operation on an existing zone, after auth and faults.
type handler func(w http.ResponseWriter, r *http.Request, z *emuZone)

// op wraps h with what every real request goes through, in the real order:
// authentication, zone routing, then the operation (where faults live).
func (e *Emulator) op(name, point string, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		e.counters.Inc(name)
		if point != "" {
			if err := e.faults.Delay(r.Context(), point); err != nil {
				return
			}
		}
		if !e.authorized(w, r) {
			return
		}
		zoneID := r.PathValue("zone")
		e.mu.Lock()
		z, ok := e.zones[zoneID]
		e.mu.Unlock()
		if !ok {
			writeErrors(w, http.StatusNotFound,
				wireError{Code: 7003, Message: fmt.Sprintf("Could not route to %s, perhaps your object identifier is invalid?", r.URL.Path)},
				wireError{Code: 7000, Message: "No route for that URI"})
			return
		}
		if r.Method != http.MethodGet && e.faults.Peek(FaultPermissions, emulator.Deny) {
			writeErrors(w, http.StatusForbidden, wireError{Code: 10000, Message: "Authentication error"})
			return
		}
		if point != "" {
			answered, lost := e.injectFault(w, r, point)
			if answered {
				return
			}
			if lost {
				// Carried out, then the answer goes missing.
				h(discard{}, r, z)
				e.srv.Hang(r)
				panic(http.ErrAbortHandler)
			}
		}
		h(w, r, z)
	}
}

// discard is where the answer of a request whose answer is lost goes.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}

func (e *Emulator) authorized(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || strings.TrimSpace(tok) == "" {
		writeErrors(w, http.StatusBadRequest, wireError{Code: 6003, Message: "Invalid request headers",
			ErrorChain: []wireError{{Code: 6111, Message: "Invalid format for Authorization header"}}})
		return false
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(e.token)) != 1 {
		writeErrors(w, http.StatusForbidden, wireError{Code: 9109, Message: "Invalid access token"})
		return false
	}
	return true
}

// injectFault answers with the configured fault, if any, and reports
// whether it did; lost means the request is to be carried out without an
// answer (emulator.Lost).
func (e *Emulator) injectFault(w http.ResponseWriter, r *http.Request, point string) (answered, lost bool) {
	kind, ok := e.faults.Check(point)
	if !ok {
		return false, false
	}
	if kind == emulator.Lost {
		return false, true
	}
	switch kind {
	case emulator.Error:
		writeErrors(w, http.StatusBadRequest, wireError{Code: 1004, Message: "DNS Validation Error (injected fault " + point + ")"})
	case emulator.Unavailable:
		writeErrors(w, http.StatusServiceUnavailable, wireError{Code: 10001, Message: "Service temporarily unavailable (injected fault " + point + ")"})
	case emulator.RateLimit:
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.retryAfter.Seconds()))))
		writeErrors(w, http.StatusTooManyRequests, wireError{Code: 971, Message: "Please wait and consider throttling your request speed"})
	case emulator.Hang, emulator.Never:
		e.srv.Hang(r)
	default:
		return false, false
	}
	return true, false
}

// zone answers the zone's details, with the permissions the token holds
// in it (what GET /zones/{id} lists under "permissions").
func (e *Emulator) zone(w http.ResponseWriter, _ *http.Request, z *emuZone) {
	perms := []string{"#zone:read", "#dns_records:read", PermissionDNSEdit}
	if e.faults.Peek(FaultPermissions, emulator.Deny) {
		perms = perms[:2]
	}
	writeResult(w, map[string]any{"id": z.ID, "name": z.Name, "status": "active", "paused": false, "type": "full",
		"permissions": perms})
}

func (e *Emulator) list(w http.ResponseWriter, r *http.Request, z *emuZone) {
	q := r.URL.Query()
	page, perPage := atoiDefault(q.Get("page"), 1), atoiDefault(q.Get("per_page"), 100)
	if page < 1 {
		page = 1
	}
	// The real API accepts 5..5,000,000 and answers 400 outside that range.
	if perPage < 5 || perPage > 5_000_000 {
		writeErrors(w, http.StatusBadRequest, wireError{Code: 1004, Message: "per_page must be between 5 and 5000000"})
		return
	}
	match := recordFilter(q)
	e.mu.Lock()
	var hits []*emuRecord
	for _, rec := range z.records {
		if match(rec) {
			hits = append(hits, rec)
		}
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].seq < hits[j].seq })
	total := len(hits)
	start := min((page-1)*perPage, total)
	end := min(start+perPage, total)
	result := make([]wireRecord, 0, end-start)
	for _, rec := range hits[start:end] {
		result = append(result, toWire(rec))
	}
	e.mu.Unlock()
	totalPages := (total + perPage - 1) / perPage
	emulator.WriteJSON(w, http.StatusOK, envelope{
		Success: true, Errors: []wireError{}, Messages: []any{}, Result: result,
		ResultInfo: &resultInfo{Page: page, PerPage: perPage, Count: len(result), TotalCount: total, TotalPages: totalPages},
	})
}

// recordFilter implements the list filters the real API documents for names,
// content, type and proxied (all combined with match=all, the default).
func recordFilter(q map[string][]string) func(*emuRecord) bool {
	get := func(k string) (string, bool) {
		v, ok := q[k]
		if !ok || len(v) == 0 {
			return "", false
		}
		return v[0], true
	}
	type cond func(*emuRecord) bool
	var conds []cond
	str := func(field string, val func(*emuRecord) string) {
		if v, ok := get(field); ok {
			conds = append(conds, func(r *emuRecord) bool { return strings.EqualFold(val(r), v) })
		}
		if v, ok := get(field + ".exact"); ok {
			conds = append(conds, func(r *emuRecord) bool { return strings.EqualFold(val(r), v) })
		}
		if v, ok := get(field + ".contains"); ok {
			conds = append(conds, func(r *emuRecord) bool { return strings.Contains(strings.ToLower(val(r)), strings.ToLower(v)) })
		}
		if v, ok := get(field + ".startswith"); ok {
			conds = append(conds, func(r *emuRecord) bool { return strings.HasPrefix(strings.ToLower(val(r)), strings.ToLower(v)) })
		}
		if v, ok := get(field + ".endswith"); ok {
			conds = append(conds, func(r *emuRecord) bool { return strings.HasSuffix(strings.ToLower(val(r)), strings.ToLower(v)) })
		}
	}
	str("name", func(r *emuRecord) string { return r.Name })
	str("content", func(r *emuRecord) string { return r.Content })
	if v, ok := get("type"); ok {
		conds = append(conds, func(r *emuRecord) bool { return strings.EqualFold(r.Type, v) })
	}
	if v, ok := get("proxied"); ok {
		want := v == "true"
		conds = append(conds, func(r *emuRecord) bool { return r.Proxied == want })
	}
	return func(r *emuRecord) bool {
		for _, c := range conds {
			if !c(r) {
				return false
			}
		}
		return true
	}
}

func (e *Emulator) get(w http.ResponseWriter, r *http.Request, z *emuZone) {
	e.mu.Lock()
	rec, ok := z.records[r.PathValue("id")]
	var out wireRecord
	if ok {
		out = toWire(rec)
	}
	e.mu.Unlock()
	if !ok {
		writeRecordMissing(w)
		return
	}
	writeResult(w, out)
}

func (e *Emulator) create(w http.ResponseWriter, r *http.Request, z *emuZone) {
	in, ok := decodeInput(w, r)
	if !ok {
		return
	}
	e.mu.Lock()
	rec, apiErr := e.validate(z, in, "")
	var out wireRecord
	if apiErr == nil {
		e.insert(z, rec)
		out = toWire(rec)
	}
	e.mu.Unlock()
	if apiErr != nil {
		writeErrors(w, apiErr.Status, apiErr.Errors...)
		return
	}
	writeResult(w, out)
}

func (e *Emulator) update(w http.ResponseWriter, r *http.Request, z *emuZone) {
	in, ok := decodeInput(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	e.mu.Lock()
	old, exists := z.records[id]
	if !exists {
		e.mu.Unlock()
		writeRecordMissing(w)
		return
	}
	rec, apiErr := e.validate(z, in, id)
	var out wireRecord
	if apiErr == nil {
		rec.ID, rec.seq, rec.created, rec.modified = id, old.seq, old.created, time.Now().UTC()
		z.records[id] = rec
		out = toWire(rec)
	}
	e.mu.Unlock()
	if apiErr != nil {
		writeErrors(w, apiErr.Status, apiErr.Errors...)
		return
	}
	writeResult(w, out)
}

func (e *Emulator) remove(w http.ResponseWriter, r *http.Request, z *emuZone) {
	id := r.PathValue("id")
	e.mu.Lock()
	_, ok := z.records[id]
	delete(z.records, id)
	e.mu.Unlock()
	if !ok {
		writeRecordMissing(w)
		return
	}
	writeResult(w, map[string]string{"id": id})
}

// emuError is a rejected request: its status and Cloudflare error list.
type emuError struct {
	Status int
	Errors []wireError
}

func badRequest(code int, msg string) *emuError {
	return &emuError{Status: http.StatusBadRequest, Errors: []wireError{{Code: code, Message: msg}}}
}

// validate turns a request body into a record the way the real API does
// (relative names completed with the zone, proxied records get automatic TTL)
// and refuses what the real API refuses. self is the record being replaced.
// Callers hold e.mu.
func (e *Emulator) validate(z *emuZone, in recordInput, self string) (*emuRecord, *emuError) {
	name := normalizeName(in.Name)
	switch {
	case name == "" || name == "@":
		name = z.Name
	case name != z.Name && !strings.HasSuffix(name, "."+z.Name):
		name += "." + z.Name
	}
	typ := strings.ToUpper(in.Type)
	switch typ {
	case "A":
		if a, err := netip.ParseAddr(in.Content); err != nil || !a.Is4() {
			return nil, badRequest(9005, "Content for A record must be a valid IPv4 address.")
		}
	case "AAAA":
		if a, err := netip.ParseAddr(in.Content); err != nil || !a.Is6() || a.Is4In6() {
			return nil, badRequest(9006, "Content for AAAA record must be a valid IPv6 address.")
		}
	case "CNAME", "TXT":
		if in.Content == "" {
			return nil, badRequest(9007, "Content for "+typ+" record is invalid.")
		}
	default:
		return nil, badRequest(1004, "DNS Validation Error: unsupported record type "+strconv.Quote(in.Type))
	}
	ttl := in.TTL
	if ttl != 1 && (ttl < 60 || ttl > 86400) {
		return nil, badRequest(9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.")
	}
	proxiable := typ == "A" || typ == "AAAA" || typ == "CNAME"
	if in.Proxied && !proxiable {
		return nil, badRequest(9004, "This record type cannot be proxied.")
	}
	if in.Proxied {
		ttl = 1 // proxied records always have automatic TTL
	}
	for id, other := range z.records {
		if id == self || !strings.EqualFold(other.Name, name) {
			continue
		}
		if other.Type == typ && strings.EqualFold(other.Content, in.Content) {
			return nil, badRequest(81058, "An identical record already exists.")
		}
		addr := func(t string) bool { return t == "A" || t == "AAAA" || t == "CNAME" }
		if (typ == "CNAME" && addr(other.Type)) || (other.Type == "CNAME" && addr(typ)) {
			return nil, badRequest(81053, "An A, AAAA, or CNAME record with that host already exists.")
		}
	}
	return &emuRecord{Record: Record{
		ID: newID(), ZoneID: z.ID, Name: name, Type: typ, Content: in.Content, TTL: ttl,
		Proxied: in.Proxied, Comment: in.Comment, Tags: append([]string(nil), in.Tags...),
		IPv4Only: in.Settings.IPv4Only, IPv6Only: in.Settings.IPv6Only,
	}}, nil
}

// recordInput is the body of POST and PUT .../dns_records as the SDK sends it.
type recordInput struct {
	Name     string         `json:"name"`
	Type     string         `json:"type"`
	Content  string         `json:"content"`
	TTL      int            `json:"ttl"`
	Proxied  bool           `json:"proxied"`
	Comment  string         `json:"comment"`
	Tags     []string       `json:"tags"`
	Settings recordSettings `json:"settings"`
}

type recordSettings struct {
	IPv4Only bool `json:"ipv4_only,omitempty"`
	IPv6Only bool `json:"ipv6_only,omitempty"`
}

func decodeInput(w http.ResponseWriter, r *http.Request) (recordInput, bool) {
	var in recordInput
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(&in); err != nil {
		writeErrors(w, http.StatusBadRequest, wireError{Code: 9207, Message: "Request body is invalid."})
		return in, false
	}
	if in.TTL == 0 {
		in.TTL = 1 // the API's default: automatic
	}
	return in, true
}

// wireRecord is a DNS record as the v4 API returns it.
type wireRecord struct {
	ID                string         `json:"id"`
	Name              string         `json:"name"`
	Type              string         `json:"type"`
	Content           string         `json:"content"`
	Proxiable         bool           `json:"proxiable"`
	Proxied           bool           `json:"proxied"`
	TTL               int            `json:"ttl"`
	Settings          recordSettings `json:"settings"`
	Meta              map[string]any `json:"meta"`
	Comment           *string        `json:"comment"`
	Tags              []string       `json:"tags"`
	CreatedOn         time.Time      `json:"created_on"`
	ModifiedOn        time.Time      `json:"modified_on"`
	CommentModifiedOn *time.Time     `json:"comment_modified_on,omitempty"`
}

func toWire(r *emuRecord) wireRecord {
	w := wireRecord{
		ID: r.ID, Name: r.Name, Type: r.Type, Content: r.Content, Proxied: r.Proxied, TTL: r.TTL,
		Proxiable: r.Type == "A" || r.Type == "AAAA" || r.Type == "CNAME",
		Settings:  recordSettings{IPv4Only: r.IPv4Only, IPv6Only: r.IPv6Only},
		Meta:      map[string]any{}, Tags: append([]string{}, r.Tags...),
		CreatedOn: r.created, ModifiedOn: r.modified,
	}
	if r.Comment != "" {
		c := r.Comment
		w.Comment = &c
		w.CommentModifiedOn = &w.ModifiedOn
	}
	return w
}

type wireError struct {
	Code       int         `json:"code"`
	Message    string      `json:"message"`
	ErrorChain []wireError `json:"error_chain,omitempty"`
}

type resultInfo struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalCount int `json:"total_count"`
	TotalPages int `json:"total_pages"`
}

// envelope is the v4 response wrapper every endpoint uses.
type envelope struct {
	Success    bool        `json:"success"`
	Errors     []wireError `json:"errors"`
	Messages   []any       `json:"messages"`
	Result     any         `json:"result"`
	ResultInfo *resultInfo `json:"result_info,omitempty"`
}

func writeResult(w http.ResponseWriter, result any) {
	emulator.WriteJSON(w, http.StatusOK, envelope{Success: true, Errors: []wireError{}, Messages: []any{}, Result: result})
}

func writeErrors(w http.ResponseWriter, status int, errs ...wireError) {
	emulator.WriteJSON(w, status, envelope{Success: false, Errors: errs, Messages: []any{}, Result: nil})
}

func writeRecordMissing(w http.ResponseWriter) {
	writeErrors(w, http.StatusNotFound, wireError{Code: 81044, Message: "Record does not exist."})
}

func atoiDefault(s string, def int) int {
	if s == "" {
		return def
	}
	// The SDK encodes numbers as floats ("2" but possibly "2.0").
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return def
	}
	return int(f)
}

// newID returns a 32-hex-digit identifier like Cloudflare's.
func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
