package scaleway

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

// Seeded catalogue and credentials of the emulator. The OS, the cloud-init
// offer, the project and the SSH key are the IDs of the recorded real
// traffic, so fixtures and emulator speak of the same things.
const (
	// SandboxAccessKey and SandboxSecretKey are the emulator's default
	// credentials (well-formed, obviously fake).
	SandboxAccessKey = "SCWSANDBOX0000000000"
	SandboxSecretKey = "00000000-0000-4000-8000-5ca1e5a4db0c"
	// SeedProjectID is the default project (and organization).
	SeedProjectID = "d3520a52-2c75-4ba0-bda8-82dd087f07f2"
	// UbuntuOSID is Ubuntu 22.04 with cloud_init_supported.
	UbuntuOSID = "96e5f0f2-d216-4de2-8a15-68730d877885"
	// NoCloudInitOSID is an OS without cloud-init support.
	NoCloudInitOSID = "7e2b8a4c-51d4-4c8e-9d0a-0c1d2e3f4a5b"
	// CloudInitOfferID is EM-I215E-NVME: in stock, tagged cloud-init, two NVMe disks.
	CloudInitOfferID = "ddb09834-8680-4339-b5e3-19ca5205fa1f"
	// NoCloudInitOfferID is in stock but lacks the cloud-init tag: ordering it
	// with user data answers HTTP 503 "cloud-init is not supported on this offer".
	NoCloudInitOfferID = "a204136d-656b-44b7-9735-88ca2f62cb1f"
	// OutOfStockOfferID supports cloud-init but its stock is empty.
	OutOfStockOfferID = "5b1f7d7e-3c39-4b0c-9a4e-8f7e6d5c4b3a"
	// SeedSSHKeyID is the project's SSH key unless EmulatorOptions says otherwise.
	SeedSSHKeyID = "f804f45d-5972-4a61-a141-9b30fdbbec12"
)

// Fault points of the emulator (see emulator.Faults). For request points:
// error → 400 invalid_arguments (permanent), unavailable → 503,
// ratelimit → 429 with Retry-After, hang and never → no answer until the
// client gives up or the emulator closes. Nothing is created or deleted
// when a request fault fires.
const (
	FaultListSSHKeys  = "scaleway.list-ssh-keys"
	FaultCreateServer = "scaleway.create-server"
	FaultGetServer    = "scaleway.get-server"
	FaultDeleteServer = "scaleway.delete-server"
	FaultListServers  = "scaleway.list-servers"
	FaultCatalogue    = "scaleway.get-catalogue" // GET os/{id} and offers/{id}
	// FaultInstall is drawn once per server, at creation:
	//   error       → the install ends in status error (server stays ready);
	//   never       → the install stays installing forever;
	//   hang        → the server stays ordered forever (IPs assigned, never delivered);
	//   unavailable → delivery fails: the server turns out_of_stock;
	//   ratelimit   → delivery fails: the server turns locked.
	FaultInstall = "scaleway.install"
)

// Delays are the times between lifecycle transitions of an emulated server.
// Zero means "at once" (still asynchronous).
type Delays struct {
	AssignIP     time.Duration // ordered, no IPs → ordered with IPs
	Deliver      time.Duration // → ready, install to_install
	StartInstall time.Duration // → ready, install installing
	Install      time.Duration // → ready, install completed
	Delete       time.Duration // deleting → gone (GET 404)
}

// DefaultDelays keep a sandbox run short while still showing every state.
func DefaultDelays() Delays {
	return Delays{
		AssignIP:     50 * time.Millisecond,
		Deliver:      150 * time.Millisecond,
		StartInstall: 150 * time.Millisecond,
		Install:      500 * time.Millisecond,
		Delete:       150 * time.Millisecond,
	}
}

// SSHKey is one IAM SSH key of the emulated project.
type SSHKey struct {
	ID        string
	Name      string
	PublicKey string
	Disabled  bool
}

// EmulatorOptions configures an Emulator; the zero value is usable.
type EmulatorOptions struct {
	// SecretKey is the X-Auth-Token every request must carry
	// (default SandboxSecretKey).
	SecretKey string
	// ProjectID owns the SSH keys and servers (default SeedProjectID).
	ProjectID string
	// Zone served (default DefaultZone); other zones have nothing.
	Zone string
	// SSHKeys of the project; nil seeds one key (SeedSSHKeyID).
	SSHKeys []SSHKey
	// NoSSHKeys leaves the project without any SSH key.
	NoSSHKeys bool
	// Faults to inject (nil: a fresh empty set, see Faults()).
	Faults *emulator.Faults
	// Delays of the lifecycle (nil: DefaultDelays()).
	Delays *Delays
	// AllocateIPv4 hands out each server's public IPv4 (default: 203.0.113.10,
	// .11, ... from the documentation range). An error puts the server in
	// status error.
	AllocateIPv4 func() (netip.Addr, error)
	// PageSize of list answers when the client does not ask (default 50).
	PageSize int
	// RetryAfter sent with ratelimit faults, rounded up to seconds (default 1s).
	RetryAfter time.Duration
	// OnInstalled runs once per server when it reaches ready/completed (the
	// sandbox boots an emulated Talos node then). It runs on a timer
	// goroutine, without emulator locks held.
	OnInstalled func(Server)
	// OnDeleted runs once per server when its deletion completes, just
	// before the API stops listing it.
	OnDeleted func(id string)
	// OnTransition runs after every timer-driven lifecycle change, before the
	// next one is scheduled: progress displays see each state, and a hook
	// that blocks holds the lifecycle (tests step through it this way).
	OnTransition func(Server)
	// Jitter spreads each server's lifecycle: every server draws one factor
	// in [1-Jitter, 1+Jitter] that scales all its delays, as servers of the
	// same offer are delivered and installed minutes apart in reality.
	// Zero: every server follows Delays exactly.
	Jitter float64
}

// Emulator is an in-process Scaleway Elastic Metal + IAM API on 127.0.0.1,
// speaking the real REST shapes to the official SDK.
type Emulator struct {
	opts     EmulatorOptions
	delays   Delays
	faults   *emulator.Faults
	counters *emulator.Counters
	oses     map[string]wireOS
	offers   map[string]wireOffer
	keys     []wireSSHKey
	done     chan struct{} // closed by Close: releases hanging handlers
	srv      *emulator.HTTPServer

	mu      sync.Mutex
	servers map[string]*emuServer
	orders  atomic.Int64 // servers bought, whether or not anybody heard
	closed  bool
	nextIP  netip.Addr
	nextV6  uint16
}

type emuServer struct {
	wire         wireServer
	installFault emulator.Kind
	timer        *time.Timer
	pace         float64 // this server's jitter factor
}

// delay is d at this server's pace.
func (s *emuServer) delay(d time.Duration) time.Duration {
	if s.pace == 0 {
		return d
	}
	return time.Duration(float64(d) * s.pace)
}

// NewEmulator starts an emulator; Close it when done.
func NewEmulator(opts EmulatorOptions) *Emulator {
	if opts.SecretKey == "" {
		opts.SecretKey = SandboxSecretKey
	}
	if opts.ProjectID == "" {
		opts.ProjectID = SeedProjectID
	}
	if opts.Zone == "" {
		opts.Zone = DefaultZone
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 50
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = time.Second
	}
	e := &Emulator{
		opts:     opts,
		delays:   DefaultDelays(),
		faults:   opts.Faults,
		counters: emulator.NewCounters(),
		oses:     seedOSes(opts.Zone),
		offers:   seedOffers(opts.Zone),
		done:     make(chan struct{}),
		servers:  map[string]*emuServer{},
		nextIP:   netip.MustParseAddr("203.0.113.10"),
	}
	if opts.Delays != nil {
		e.delays = *opts.Delays
	}
	if e.faults == nil {
		e.faults = emulator.NewFaults()
	}
	e.keys = seedKeys(opts)
	e.srv = emulator.StartHTTP(e.routes())
	return e
}

func seedKeys(opts EmulatorOptions) []wireSSHKey {
	if opts.NoSSHKeys {
		return nil
	}
	keys := opts.SSHKeys
	if keys == nil {
		keys = []SSHKey{{
			ID:        SeedSSHKeyID,
			Name:      "rawkode-cloud-sandbox",
			PublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICJEoOOgQBLJPs4g/XcPTKT82NywNPpxeuA20FlOPlpO",
		}}
	}
	now := time.Now().UTC()
	out := make([]wireSSHKey, 0, len(keys))
	for _, k := range keys {
		if k.ID == "" {
			k.ID = newUUID()
		}
		out = append(out, wireSSHKey{
			ID: k.ID, Name: k.Name, PublicKey: k.PublicKey, Fingerprint: fingerprint(k.PublicKey),
			CreatedAt: now, UpdatedAt: now, OrganizationID: opts.ProjectID, ProjectID: opts.ProjectID,
			Disabled: k.Disabled,
		})
	}
	return out
}

// URL is the API base URL (Config.APIURL).
func (e *Emulator) URL() string { return e.srv.URL() }

// Faults is the emulator's fault set, to change at run time.
func (e *Emulator) Faults() *emulator.Faults { return e.faults }

// Counters counts requests per operation: list-ssh-keys, get-ssh-key,
// get-os, get-offer, create-server, list-servers, get-server,
// delete-server, metadata, unauthorized.
func (e *Emulator) Counters() *emulator.Counters { return e.counters }

// Config returns a client configuration for this emulator.
func (e *Emulator) Config() Config {
	return Config{
		AccessKey: SandboxAccessKey,
		SecretKey: e.opts.SecretKey,
		ProjectID: e.opts.ProjectID,
		Zone:      e.opts.Zone,
		APIURL:    e.URL(),
	}
}

// Orders is how many servers were ordered so far, answered or not (the
// counters count requests, and a request may still be taking its order).
func (e *Emulator) Orders() int { return int(e.orders.Load()) }

// Servers lists the servers still known to the API (deleting ones
// included), oldest first.
func (e *Emulator) Servers() []Server {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Server, 0, len(e.servers))
	for _, s := range e.servers {
		out = append(out, s.snapshot())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].ID < out[j].ID
		}
		return out[i].CreatedAt.Before(out[j].CreatedAt)
	})
	return out
}

// UserData is the cloud-init user data a server was ordered with (nil when
// none or unknown): the sandbox reads it to know what the server becomes.
func (e *Emulator) UserData(id string) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s, ok := e.servers[id]; ok {
		return slices.Clone(s.wire.UserData)
	}
	return nil
}

// Close stops the lifecycle timers, releases hanging requests and shuts
// the server down. No lifecycle transition starts after Close.
func (e *Emulator) Close() {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		close(e.done)
		for _, s := range e.servers {
			if s.timer != nil {
				s.timer.Stop()
			}
		}
	}
	e.mu.Unlock()
	e.srv.Close()
}

func (s *emuServer) snapshot() Server {
	out := Server{
		ID: s.wire.ID, Name: s.wire.Name, Status: s.wire.Status, Zone: s.wire.Zone,
		OfferID: s.wire.OfferID, Tags: slices.Clone(s.wire.Tags), CreatedAt: s.wire.CreatedAt,
		UserData: slices.Clone(s.wire.UserData),
	}
	if s.wire.Install != nil {
		out.InstallStatus = s.wire.Install.Status
	}
	for _, ip := range s.wire.IPs {
		if ip.Version == "IPv4" {
			out.IPv4 = ip.Address
			break
		}
	}
	return out
}

func (e *Emulator) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metadata", e.metadata)
	mux.HandleFunc("GET /iam/v1alpha1/ssh-keys", e.listSSHKeys)
	mux.HandleFunc("GET /iam/v1alpha1/ssh-keys/{id}", e.getSSHKey)
	mux.HandleFunc("GET /baremetal/v1/zones/{zone}/os/{id}", e.getOS)
	mux.HandleFunc("GET /baremetal/v1/zones/{zone}/offers/{id}", e.getOffer)
	mux.HandleFunc("POST /baremetal/v1/zones/{zone}/servers", e.createServer)
	mux.HandleFunc("GET /baremetal/v1/zones/{zone}/servers", e.listServers)
	mux.HandleFunc("GET /baremetal/v1/zones/{zone}/servers/{id}", e.getServer)
	mux.HandleFunc("DELETE /baremetal/v1/zones/{zone}/servers/{id}", e.deleteServer)
	mux.HandleFunc("PATCH /baremetal/v1/zones/{zone}/servers/{id}", e.updateServer)
	mux.HandleFunc("POST /baremetal/v1/zones/{zone}/servers/{id}/install", e.installServer)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { notFound(w) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metadata" && !e.authorized(w, r) {
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// authorized answers 401 in the real denied_authentication shape unless the
// request carries the configured secret key. The token is never echoed.
func (e *Emulator) authorized(w http.ResponseWriter, r *http.Request) bool {
	token := r.Header.Get("X-Auth-Token")
	if token == e.opts.SecretKey {
		return true
	}
	e.counters.Inc("unauthorized")
	reason := "not_found"
	if token == "" {
		reason = "invalid_argument"
	}
	emulator.WriteJSON(w, http.StatusUnauthorized, wireDeniedAuth{
		Message: "authentication is denied", Method: "api_key", Reason: reason, Type: "denied_authentication",
	})
	return false
}

// forbidden answers 403 permissions_denied, e.g. for another project.
func forbidden(w http.ResponseWriter, action, resource string) {
	emulator.WriteJSON(w, http.StatusForbidden, wirePermissionsDenied{
		Details: []wirePermissionDetail{{Action: action, Resource: resource}},
		Message: "insufficient permissions", Type: "permissions_denied",
	})
}

func notFound(w http.ResponseWriter) {
	emulator.WriteJSON(w, http.StatusNotFound, wireMessage{Message: "Not Found"})
}

// fault applies latency and the fault configured for point; true means the
// request has been answered (or abandoned) and must not be processed.
func (e *Emulator) fault(w http.ResponseWriter, r *http.Request, point string) bool {
	answered, _ := e.faultOrLost(w, r, point, r.Context())
	return answered
}

// faultOrLost is fault for a request the API carries out once received:
// the latency is waited out on delay (a CreateServer keeps going when its
// client hangs up), and lost reports the emulator.Lost fault: carry the
// request out, then never answer it.
func (e *Emulator) faultOrLost(w http.ResponseWriter, r *http.Request, point string, delay context.Context) (answered, lost bool) {
	if err := e.faults.Delay(delay, point); err != nil {
		return true, false
	}
	kind, ok := e.faults.Check(point)
	if !ok {
		return false, false
	}
	if kind == emulator.Lost {
		return false, true
	}
	switch kind {
	case emulator.Error:
		emulator.WriteJSON(w, http.StatusBadRequest, invalidArgument("request", "constraint", "injected fault at "+point))
	case emulator.Unavailable:
		emulator.WriteJSON(w, http.StatusServiceUnavailable, wireMessage{Message: "Service Unavailable"})
	case emulator.RateLimit:
		secs := int(math.Ceil(e.opts.RetryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		emulator.WriteJSON(w, http.StatusTooManyRequests, wireMessage{Message: "Too Many Requests"})
	default: // hang, never
		e.hang(r)
	}
	return true, false
}

// hang holds a request until its client gives up or the emulator closes.
func (e *Emulator) hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-e.done:
	}
}

// received is the context a received order is processed under: the client
// hanging up does not stop it (the API has the request, and Scaleway's
// order goes through whether or not anybody reads the answer), the
// emulator closing does.
func (e *Emulator) received(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	go func() {
		select {
		case <-e.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (e *Emulator) metadata(w http.ResponseWriter, _ *http.Request) {
	e.counters.Inc("metadata")
	emulator.WriteJSON(w, http.StatusOK, map[string]string{"platform": "emulator", "partition": "scw", "domain": "scw.cloud"})
}

func (e *Emulator) listSSHKeys(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("list-ssh-keys")
	if e.fault(w, r, FaultListSSHKeys) {
		return
	}
	q := r.URL.Query()
	var keys []wireSSHKey
	for _, k := range e.keys {
		if p := q.Get("project_id"); p != "" && p != k.ProjectID {
			continue
		}
		if d := q.Get("disabled"); d != "" && d != strconv.FormatBool(k.Disabled) {
			continue
		}
		keys = append(keys, k)
	}
	page, total := paginate(keys, q, e.opts.PageSize)
	if page == nil {
		page = []wireSSHKey{}
	}
	emulator.WriteJSON(w, http.StatusOK, wireListSSHKeys{SSHKeys: page, TotalCount: total})
}

func (e *Emulator) getSSHKey(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("get-ssh-key")
	id := r.PathValue("id")
	for _, k := range e.keys {
		if k.ID == id {
			emulator.WriteJSON(w, http.StatusOK, k)
			return
		}
	}
	emulator.WriteJSON(w, http.StatusNotFound, wireIAMNotFound{
		Message: "resource is not found", Resource: "ssh_key", ResourceID: id, Type: "not_found",
	})
}

func (e *Emulator) getOS(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("get-os")
	if e.fault(w, r, FaultCatalogue) {
		return
	}
	os, ok := e.oses[r.PathValue("id")]
	if !ok || r.PathValue("zone") != e.opts.Zone {
		notFound(w)
		return
	}
	emulator.WriteJSON(w, http.StatusOK, os)
}

func (e *Emulator) getOffer(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("get-offer")
	if e.fault(w, r, FaultCatalogue) {
		return
	}
	offer, ok := e.offers[r.PathValue("id")]
	if !ok || r.PathValue("zone") != e.opts.Zone {
		notFound(w)
		return
	}
	emulator.WriteJSON(w, http.StatusOK, offer)
}

func (e *Emulator) createServer(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("create-server")
	// The body is read before any latency: the request has arrived whole,
	// and what happens to it no longer depends on the client waiting.
	var req wireCreateServer
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		emulator.WriteJSON(w, http.StatusBadRequest, invalidArgument("body", "format", "request body is not valid JSON"))
		return
	}
	ctx, cancel := e.received(r)
	defer cancel()
	answered, lost := e.faultOrLost(w, r, FaultCreateServer, ctx)
	if answered {
		return
	}
	if lost {
		// The order goes through; its answer never comes back.
		w = discard{}
		defer e.hang(r)
	}
	if req.ProjectID == nil || *req.ProjectID != e.opts.ProjectID || r.PathValue("zone") != e.opts.Zone {
		forbidden(w, "write", "baremetal_servers")
		return
	}
	offer, ok := e.offers[req.OfferID]
	if !ok {
		emulator.WriteJSON(w, http.StatusBadRequest, invalidArgument("offer_id", "constraint", "offer not found in zone "+e.opts.Zone))
		return
	}
	if offer.Stock == "empty" {
		emulator.WriteJSON(w, http.StatusConflict, wireOutOfStock{Message: "offer is out of stock", Resource: "offer", Type: "out_of_stock"})
		return
	}
	if req.UserData != nil && !slices.Contains(offer.Tags, cloudInitTag) {
		// Recorded behaviour: a 503 that no retry ever fixes. Checked before
		// the install block so the recorded request gets the recorded answer.
		emulator.WriteJSON(w, http.StatusServiceUnavailable, wireMessage{Message: cloudInitUnsupported})
		return
	}
	if msg := e.checkInstall(&req, offer); msg != nil {
		emulator.WriteJSON(w, http.StatusBadRequest, *msg)
		return
	}
	emulator.WriteJSON(w, http.StatusOK, e.order(&req, offer))
}

// discard is where the answer of a lost request goes.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

// checkInstall validates the install block; nil means it is fine.
func (e *Emulator) checkInstall(req *wireCreateServer, offer wireOffer) *wireInvalidArguments {
	bad := func(arg, reason, help string) *wireInvalidArguments {
		m := invalidArgument(arg, reason, help)
		return &m
	}
	if req.Install == nil {
		if req.UserData != nil {
			return bad("install", "required", "user_data needs an OS install")
		}
		return nil
	}
	os, ok := e.oses[req.Install.OSID]
	if !ok {
		return bad("install.os_id", "constraint", "OS not found in zone "+e.opts.Zone)
	}
	if req.UserData != nil && !os.CloudInitSupported {
		return bad("user_data", "constraint", "cloud-init is not supported by this OS")
	}
	if slices.Contains(offer.IncompatibleOSIDs, os.ID) {
		return bad("install.os_id", "constraint", "OS is not compatible with this offer")
	}
	if len(req.Install.SSHKeyIDs) == 0 {
		return bad("install.ssh_key_ids", "required", "at least one SSH key is required")
	}
	for _, id := range req.Install.SSHKeyIDs {
		if !slices.ContainsFunc(e.keys, func(k wireSSHKey) bool { return k.ID == id }) {
			return bad("install.ssh_key_ids", "constraint", "unknown SSH key "+id)
		}
	}
	return nil
}

// order records a new server (ordered, install to_install, no IPs) and
// starts its lifecycle.
func (e *Emulator) order(req *wireCreateServer, offer wireOffer) wireServer {
	e.orders.Add(1)
	now := time.Now().UTC()
	s := &emuServer{wire: wireServer{
		BootType: "normal", CreatedAt: now, Description: req.Description, ID: newUUID(),
		IPs: []wireIP{}, Name: req.Name, OfferID: offer.ID, OfferName: offer.Name, Options: []any{},
		OrganizationID: e.opts.ProjectID, PingStatus: "ping_status_unknown", ProjectID: e.opts.ProjectID,
		Protected: req.Protected, Status: "ordered", Tags: slices.Clone(req.Tags), UpdatedAt: now,
		Zone: e.opts.Zone,
	}}
	if s.wire.Tags == nil {
		s.wire.Tags = []string{}
	}
	if req.UserData != nil {
		s.wire.UserData = slices.Clone(*req.UserData)
	}
	if req.Install != nil {
		e.beginInstall(s, req.Install.OSID, req.Install.Hostname, req.Install.SSHKeyIDs)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.servers[s.wire.ID] = s
	id := s.wire.ID
	if j := e.opts.Jitter; j > 0 {
		s.pace = 1 - j + 2*j*rand.Float64()
	}
	s.timer = time.AfterFunc(s.delay(e.delays.AssignIP), func() { e.advance(id) })
	return cloneWire(s.wire)
}

// beginInstall records an OS install as to_install on s, whether it was
// ordered with the server or started later (InstallServer), and draws the
// install fault for it: a fault limited to one node hits the server of that
// name.
func (e *Emulator) beginInstall(s *emuServer, osID, hostname string, sshKeyIDs []string) {
	user := ""
	if u := e.oses[osID].User.DefaultValue; u != nil {
		user = *u
	}
	s.wire.Install = &wireInstall{
		Hostname: hostname, OSID: osID, PartitioningSchema: twoNVMeRAID1(),
		SSHKeyIDs: slices.Clone(sshKeyIDs), Status: "to_install", User: user,
	}
	if kind, ok := e.faults.ForNode(s.wire.Name).Check(FaultInstall); ok {
		s.installFault = kind
	}
}

// advance moves one server to its next lifecycle state and schedules the
// one after, if any.
func (e *Emulator) advance(id string) {
	e.mu.Lock()
	s := e.servers[id]
	if e.closed || s == nil || s.wire.Status == "deleting" {
		e.mu.Unlock()
		return
	}
	next := time.Duration(-1)
	var installed *Server
	w := &s.wire
	switch {
	case w.Status == "ordered" && len(w.IPs) == 0:
		if err := e.assignIPs(w); err != nil {
			w.Status = "error"
			break
		}
		if s.installFault != emulator.Hang {
			next = s.delay(e.delays.Deliver)
		}
	case w.Status == "ordered":
		switch s.installFault {
		case emulator.Unavailable:
			w.Status = "out_of_stock"
		case emulator.RateLimit:
			w.Status = "locked"
		default:
			w.Status = "ready"
			w.PingStatus = "ping_status_up"
			if w.Install != nil {
				next = s.delay(e.delays.StartInstall)
			}
		}
	case w.Install != nil && w.Install.Status == "to_install":
		w.Install.Status = "installing"
		if s.installFault != emulator.Never {
			next = s.delay(e.delays.Install)
		}
	case w.Install != nil && w.Install.Status == "installing":
		if s.installFault == emulator.Error {
			w.Install.Status = "error"
			break
		}
		w.Install.Status = "completed"
		w.Domain = w.ID + "." + w.Zone + ".baremetal.scw.cloud"
		for i := range w.IPs {
			w.IPs[i].Reverse, w.IPs[i].ReverseStatus = w.Domain, "active"
		}
		snap := s.snapshot()
		installed = &snap
	}
	w.UpdatedAt = time.Now().UTC()
	s.timer = nil
	snap := s.snapshot()
	e.mu.Unlock()

	if e.opts.OnTransition != nil {
		e.opts.OnTransition(snap)
	}
	if installed != nil && e.opts.OnInstalled != nil {
		e.opts.OnInstalled(*installed)
	}
	if next < 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// The server may have been deleted (or the emulator closed) meanwhile.
	if cur := e.servers[id]; !e.closed && cur == s && s.wire.Status != "deleting" {
		s.timer = time.AfterFunc(next, func() { e.advance(id) })
	}
}

// assignIPs gives the server its public IPv4 and IPv6; e.mu is held.
func (e *Emulator) assignIPs(w *wireServer) error {
	var v4 netip.Addr
	if e.opts.AllocateIPv4 != nil {
		a, err := e.opts.AllocateIPv4()
		if err != nil {
			return err
		}
		v4 = a
	} else {
		v4 = e.nextIP
		e.nextIP = e.nextIP.Next()
		if !netip.MustParsePrefix("203.0.113.0/24").Contains(e.nextIP) {
			e.nextIP = netip.MustParseAddr("203.0.113.10")
		}
	}
	e.nextV6++
	w.IPs = []wireIP{
		{Address: v4.String(), ID: newUUID(), ReverseStatus: "unknown", Version: "IPv4"},
		{Address: fmt.Sprintf("2001:db8::%x", e.nextV6), ID: newUUID(), ReverseStatus: "unknown", Version: "IPv6"},
	}
	return nil
}

func (e *Emulator) listServers(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("list-servers")
	if e.fault(w, r, FaultListServers) {
		return
	}
	q := r.URL.Query()
	if p := q.Get("project_id"); p != "" && p != e.opts.ProjectID {
		forbidden(w, "read", "baremetal_servers")
		return
	}
	tags, name, statuses := q["tags"], q.Get("name"), q["status"]
	var out []wireServer
	for _, s := range e.Servers() { // sorted snapshot; details read below
		if s.Zone != r.PathValue("zone") || !hasAll(s.Tags, tags) || !strings.Contains(s.Name, name) {
			continue
		}
		if len(statuses) > 0 && !slices.Contains(statuses, s.Status) {
			continue
		}
		if ws, ok := e.wireOf(s.ID); ok {
			out = append(out, ws)
		}
	}
	page, total := paginate(out, q, e.opts.PageSize)
	if page == nil {
		page = []wireServer{}
	}
	emulator.WriteJSON(w, http.StatusOK, wireListServers{Servers: page, TotalCount: total})
}

func (e *Emulator) wireOf(id string) (wireServer, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.servers[id]
	if !ok {
		return wireServer{}, false
	}
	return cloneWire(s.wire), true
}

// cloneWire copies the mutable parts so encoding never races the timers.
func cloneWire(w wireServer) wireServer {
	w.IPs = slices.Clone(w.IPs)
	w.Tags = slices.Clone(w.Tags)
	if w.Install != nil {
		in := *w.Install
		w.Install = &in
	}
	return w
}

func (e *Emulator) getServer(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("get-server")
	if e.fault(w, r, FaultGetServer) {
		return
	}
	ws, ok := e.wireOf(r.PathValue("id"))
	if !ok || ws.Zone != r.PathValue("zone") {
		notFound(w)
		return
	}
	emulator.WriteJSON(w, http.StatusOK, ws)
}

func (e *Emulator) deleteServer(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("delete-server")
	if e.fault(w, r, FaultDeleteServer) {
		return
	}
	id := r.PathValue("id")
	e.mu.Lock()
	s, ok := e.servers[id]
	if !ok || s.wire.Zone != r.PathValue("zone") {
		e.mu.Unlock()
		notFound(w)
		return
	}
	if refusesDelete[s.wire.Status] {
		cur := s.wire.Status
		e.mu.Unlock()
		emulator.WriteJSON(w, http.StatusConflict, wireTransientState{
			Message: "resource is in a transient state", Resource: "baremetal_server", ResourceID: id,
			CurrentState: cur, Type: "transient_state",
		})
		return
	}
	if s.wire.Status != "deleting" {
		if s.timer != nil {
			s.timer.Stop()
		}
		s.wire.Status = "deleting"
		s.wire.UpdatedAt = time.Now().UTC()
		s.timer = time.AfterFunc(e.delays.Delete, func() { e.remove(id) })
	}
	ws := cloneWire(s.wire)
	e.mu.Unlock()
	emulator.WriteJSON(w, http.StatusOK, ws)
}

// refusesDelete are the server states in which DELETE answers 409
// transient_state: the ones the official SDK's WaitForServer treats as
// transient (scaleway-sdk-go api/baremetal/v1, WaitForServer), for which the
// API answers a mutation with a TransientStateError (scw/errors.go) instead
// of acting. The emulator only ever shows "ordered" of these: an undo right
// after the order has to wait until the server is delivered.
var refusesDelete = map[string]bool{
	"ordered": true, "delivering": true, "starting": true, "stopping": true, "resetting": true, "migrating": true,
}

// wireTransientState is the API's answer to a mutation in a transient state.
type wireTransientState struct {
	Message      string `json:"message"`
	Resource     string `json:"resource"`
	ResourceID   string `json:"resource_id"`
	CurrentState string `json:"current_state"`
	Type         string `json:"type"`
}

func (e *Emulator) remove(id string) {
	e.mu.Lock()
	_, ok := e.servers[id]
	closed := e.closed
	e.mu.Unlock()
	if closed || !ok {
		return
	}
	// The machine goes before the API forgets it: whoever sees the 404
	// must find what ran on it (the sandbox's node and kube agent) gone too.
	if e.opts.OnDeleted != nil {
		e.opts.OnDeleted(id)
	}
	e.mu.Lock()
	delete(e.servers, id)
	e.mu.Unlock()
}

// paginate applies page (1-based) and page_size query parameters.
func paginate[T any](items []T, q map[string][]string, defaultSize int) ([]T, int) {
	size, page := defaultSize, 1
	if v, err := strconv.Atoi(first(q["page_size"])); err == nil && v > 0 {
		size = v
	}
	if v, err := strconv.Atoi(first(q["page"])); err == nil && v > 0 {
		page = v
	}
	start := min((page-1)*size, len(items))
	end := min(start+size, len(items))
	return items[start:end], len(items)
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
