package infisical

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

// Fault points of the Infisical emulator. Every kind answers the way the real
// service (or the proxy in front of it) does:
//   - error:       400 BadRequest in Infisical's error shape (permanent)
//   - unavailable: 503 (transient)
//   - ratelimit:   429 RateLimitExceeded with Retry-After (transient)
//   - hang, never: no answer until the client gives up or the emulator closes
const (
	FaultLogin         = "infisical.login"          // universal-auth login (also background re-auth)
	FaultListSecrets   = "infisical.list-secrets"   // list and get secrets
	FaultWriteSecrets  = "infisical.write-secrets"  // create and update secrets
	FaultDeleteSecrets = "infisical.delete-secrets" // delete secrets
	// FaultPermissions' "deny" kind gives the identity a project role that
	// may read secrets but not create, edit or delete secrets or folders:
	// those answer 403 PermissionDenied, as Infisical's error handler does
	// for a CASL ForbiddenError (backend/src/server/plugins/error-handler.ts).
	FaultPermissions = "infisical.permissions"
)

// tokenPrefix marks every access token the emulator issues, so tests can
// assert that no token ever reaches an error message or a log line.
const tokenPrefix = "infisical-emulator-token."

// Identity is a machine identity allowed to log in with Universal Auth.
type Identity struct {
	ClientID     string
	ClientSecret string
}

// Project is an Infisical project and its environment slugs.
type Project struct {
	ID string
	// Environments defaults to dev, staging and prod.
	Environments []string
}

// SeedSecret is a secret present when the emulator starts.
type SeedSecret struct {
	Project, Environment, Path, Name, Value string
}

// Secret names one stored secret. The inventory never carries values; use
// Emulator.Value to read one in a test.
type Secret struct {
	Project, Environment, Path, Name string
}

// EmulatorOptions configure NewEmulator. The zero value is an Infisical with
// no identities, no projects and default token lifetimes.
type EmulatorOptions struct {
	Identities []Identity
	Projects   []Project
	// Secrets are seeded at start; their projects, environments and folders
	// are created as needed.
	Secrets []SeedSecret
	// TokenTTL is the access token lifetime; default 2h. It is announced in
	// whole seconds (expiresIn), and the SDK renews a token 5s before it
	// expires, so below 6s renewal cannot be observed through the SDK.
	TokenTTL time.Duration
	// TokenMaxTTL bounds renewals (accessTokenMaxTTL); default 30 days.
	TokenMaxTTL time.Duration
	// RetryAfter is what ratelimit faults ask clients to wait; default 1s.
	RetryAfter time.Duration
	// Faults to inject; a fresh set when nil.
	Faults *emulator.Faults
}

// Emulator is an in-process Infisical speaking the REST API the go-sdk uses:
// Universal Auth login, token renewal and revocation, v3 raw secrets
// (list, get, create, update, delete) and v1 folders. It listens on loopback
// over plain HTTP and is safe for concurrent use.
type Emulator struct {
	srv      *emulator.HTTPServer
	faults   *emulator.Faults
	counters *emulator.Counters

	ttl, maxTTL, retryAfter time.Duration
	identities              map[string]string // client ID → client secret

	mu       sync.Mutex
	projects map[string]map[string]*envState // project ID → environment slug → state
	tokens   map[string]*token
	reqSeq   int
}

type envState struct {
	id      string
	folders map[string]*folder            // path → folder ("/" always exists)
	secrets map[string]map[string]*secret // folder path → name → secret
}

type folder struct {
	id, name, parentID string
	created            time.Time
}

type secret struct {
	id, value, comment string
	version            int
}

type token struct {
	clientID            string
	expires, maxExpires time.Time
}

// NewEmulator starts an Infisical emulator on 127.0.0.1 with a kernel-chosen port.
func NewEmulator(opts EmulatorOptions) *Emulator {
	e := &Emulator{
		faults:     opts.Faults,
		counters:   emulator.NewCounters(),
		ttl:        orDefault(opts.TokenTTL, 2*time.Hour),
		maxTTL:     orDefault(opts.TokenMaxTTL, 30*24*time.Hour),
		retryAfter: orDefault(opts.RetryAfter, time.Second),
		identities: map[string]string{},
		projects:   map[string]map[string]*envState{},
		tokens:     map[string]*token{},
	}
	if e.faults == nil {
		e.faults = emulator.NewFaults()
	}
	for _, id := range opts.Identities {
		e.identities[id.ClientID] = id.ClientSecret
	}
	for _, p := range opts.Projects {
		envs := p.Environments
		if len(envs) == 0 {
			envs = []string{"dev", "staging", "prod"}
		}
		for _, env := range envs {
			e.envLocked(p.ID, env)
		}
	}
	for _, s := range opts.Secrets {
		e.Put(s.Project, s.Environment, s.Path, s.Name, s.Value)
	}
	e.srv = emulator.StartHTTP(e.routes())
	return e
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// URL is the site URL to give the SDK (it appends /api itself).
func (e *Emulator) URL() string { return e.srv.URL() }

// Faults is the emulator's fault set, to inject failures while it runs.
func (e *Emulator) Faults() *emulator.Faults { return e.faults }

// Counters counts requests per operation: login, renew, revoke,
// list-secrets, get-secret, create-secret, update-secret, delete-secret,
// create-folder.
func (e *Emulator) Counters() *emulator.Counters { return e.counters }

// Close releases hanging requests and stops the server.
func (e *Emulator) Close() { e.srv.Close() }

// Put stores a secret, creating its project, environment and folders as needed.
func (e *Emulator) Put(project, env, secretPath, name, value string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.envLocked(project, env)
	p := cleanPath(secretPath)
	st.mkdirAll(p)
	e.upsertLocked(st, p, name, value, "")
}

// Value returns a stored secret's value, for tests.
func (e *Emulator) Value(project, env, secretPath, name string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.projects[project][env]
	if st == nil {
		return "", false
	}
	s, ok := st.secrets[cleanPath(secretPath)][name]
	if !ok {
		return "", false
	}
	return s.value, true
}

// Secrets lists every stored secret, sorted, without values.
func (e *Emulator) Secrets() []Secret {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Secret
	for pid, envs := range e.projects {
		for env, st := range envs {
			for p, names := range st.secrets {
				for name := range names {
					out = append(out, Secret{Project: pid, Environment: env, Path: p, Name: name})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b Secret) int {
		return strings.Compare(
			a.Project+"\x00"+a.Environment+"\x00"+a.Path+"\x00"+a.Name,
			b.Project+"\x00"+b.Environment+"\x00"+b.Path+"\x00"+b.Name)
	})
	return out
}

func (e *Emulator) envLocked(project, env string) *envState {
	envs := e.projects[project]
	if envs == nil {
		envs = map[string]*envState{}
		e.projects[project] = envs
	}
	st := envs[env]
	if st == nil {
		st = &envState{
			id:      newID(),
			folders: map[string]*folder{"/": {id: newID(), name: "root", created: time.Now()}},
			secrets: map[string]map[string]*secret{},
		}
		envs[env] = st
	}
	return st
}

// mkdirAll creates p and its missing parents, the way Infisical's folder
// creation does, and returns the folder at p.
func (st *envState) mkdirAll(p string) *folder {
	if f := st.folders[p]; f != nil {
		return f
	}
	parent := st.mkdirAll(path.Dir(p))
	f := &folder{id: newID(), name: path.Base(p), parentID: parent.id, created: time.Now()}
	st.folders[p] = f
	return f
}

func (e *Emulator) upsertLocked(st *envState, p, name, value, comment string) *secret {
	names := st.secrets[p]
	if names == nil {
		names = map[string]*secret{}
		st.secrets[p] = names
	}
	s := names[name]
	if s == nil {
		s = &secret{id: newID()}
		names[name] = s
	}
	s.value, s.comment = value, comment
	s.version++
	return s
}

func cleanPath(p string) string { return path.Clean("/" + p) }

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// ---- HTTP ----

func (e *Emulator) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/auth/universal-auth/login", e.login)
	mux.HandleFunc("POST /api/v1/auth/token/renew", e.renew)
	mux.HandleFunc("POST /api/v1/auth/token/revoke", e.authed(e.revoke))
	mux.HandleFunc("GET /api/v3/secrets/raw", e.authed(e.listSecrets))
	mux.HandleFunc("GET /api/v3/secrets/raw/{name}", e.authed(e.getSecret))
	mux.HandleFunc("POST /api/v3/secrets/raw/{name}", e.authed(e.createSecret))
	mux.HandleFunc("PATCH /api/v3/secrets/raw/{name}", e.authed(e.updateSecret))
	mux.HandleFunc("DELETE /api/v3/secrets/raw/{name}", e.authed(e.deleteSecret))
	mux.HandleFunc("POST /api/v1/folders", e.authed(e.createFolder))
	mux.HandleFunc("GET /api/v1/folders", e.authed(e.listFolders))
	mux.HandleFunc("DELETE /api/v1/folders/{folder}", e.authed(e.deleteFolder))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			// Fastify's shape for an unknown route.
			emulator.WriteJSON(w, http.StatusNotFound, map[string]any{
				"statusCode": 404, "error": "Not Found",
				"message": fmt.Sprintf("Route %s:%s not found", r.Method, r.URL.Path),
			})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// apiError writes Infisical's error shape: {reqId, statusCode, message, error}.
func (e *Emulator) apiError(w http.ResponseWriter, status int, name string, message any) {
	e.mu.Lock()
	e.reqSeq++
	id := fmt.Sprintf("req-%06d", e.reqSeq)
	e.mu.Unlock()
	emulator.WriteJSON(w, status, map[string]any{
		"reqId": id, "statusCode": status, "message": message, "error": name,
	})
}

// fault applies latency and any injected fault for point; true means the
// request has been answered (or abandoned) and the handler must stop.
func (e *Emulator) fault(w http.ResponseWriter, r *http.Request, point string) bool {
	if err := e.faults.Delay(r.Context(), point); err != nil {
		return true
	}
	kind, ok := e.faults.Check(point)
	if !ok {
		return false
	}
	switch kind {
	case emulator.Error:
		e.apiError(w, http.StatusBadRequest, "BadRequest", "injected fault at "+point)
	case emulator.Unavailable:
		e.apiError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "Service Unavailable")
	case emulator.RateLimit:
		secs := int(math.Ceil(e.retryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		e.apiError(w, http.StatusTooManyRequests, "RateLimitExceeded",
			fmt.Sprintf("Rate limit exceeded. Please try again in %d seconds", secs))
	default: // hang, never
		e.srv.Hang(r)
		// Abort without an answer: returning normally would send an empty 200.
		panic(http.ErrAbortHandler)
	}
	return true
}

// denied answers 403 when infisical.permissions=deny takes write access
// away; true means the request has been answered.
func (e *Emulator) denied(w http.ResponseWriter, action, subject string) bool {
	if !e.faults.Peek(FaultPermissions, emulator.Deny) {
		return false
	}
	e.mu.Lock()
	e.reqSeq++
	id := fmt.Sprintf("req-%06d", e.reqSeq)
	e.mu.Unlock()
	emulator.WriteJSON(w, http.StatusForbidden, map[string]any{
		"reqId": id, "statusCode": http.StatusForbidden, "error": "PermissionDenied",
		"message": fmt.Sprintf("You are not allowed to %s on %s", action, subject),
		"details": []map[string]any{{"action": []string{"read"}, "inverted": false, "subject": subject}},
	})
	return true
}

func decode(r *http.Request, v any) error {
	return json.NewDecoder(r.Body).Decode(v)
}

type loginResponse struct {
	AccessToken       string `json:"accessToken"`
	ExpiresIn         int64  `json:"expiresIn"`
	AccessTokenMaxTTL int64  `json:"accessTokenMaxTTL"`
	TokenType         string `json:"tokenType"`
}

func (e *Emulator) login(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("login")
	if e.fault(w, r, FaultLogin) {
		return
	}
	var req struct {
		ClientID     string `json:"clientId"`
		ClientSecret string `json:"clientSecret"`
	}
	if err := decode(r, &req); err != nil || req.ClientID == "" || req.ClientSecret == "" {
		e.validationError(w, "clientId")
		return
	}
	want, ok := e.identities[req.ClientID]
	if !ok || want != req.ClientSecret {
		e.apiError(w, http.StatusUnauthorized, "UnauthorizedError", "Invalid credentials")
		return
	}
	now := time.Now()
	tok := tokenPrefix + newID()
	t := &token{clientID: req.ClientID, expires: now.Add(e.ttl), maxExpires: now.Add(e.maxTTL)}
	e.mu.Lock()
	e.tokens[tok] = t
	e.mu.Unlock()
	emulator.WriteJSON(w, http.StatusOK, loginResponse{
		AccessToken: tok, ExpiresIn: int64(e.ttl.Seconds()),
		AccessTokenMaxTTL: int64(e.maxTTL.Seconds()), TokenType: "Bearer",
	})
}

// renew extends a live token up to its max TTL; like Infisical, the token
// string stays the same.
func (e *Emulator) renew(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("renew")
	var req struct {
		AccessToken string `json:"accessToken"`
	}
	if err := decode(r, &req); err != nil || req.AccessToken == "" {
		e.validationError(w, "accessToken")
		return
	}
	now := time.Now()
	e.mu.Lock()
	t := e.tokens[req.AccessToken]
	var status int
	switch {
	case t == nil:
		status = http.StatusUnauthorized
	case now.After(t.expires):
		status = http.StatusForbidden
	case now.After(t.maxExpires):
		status = http.StatusUnauthorized
	default:
		t.expires = now.Add(e.ttl)
		if t.expires.After(t.maxExpires) {
			t.expires = t.maxExpires
		}
	}
	e.mu.Unlock()
	switch status {
	case http.StatusUnauthorized:
		e.apiError(w, status, "UnauthorizedError", "Failed to renew access token")
	case http.StatusForbidden:
		e.apiError(w, status, "TokenError", "Your token has expired. Please re-authenticate.")
	default:
		emulator.WriteJSON(w, http.StatusOK, loginResponse{
			AccessToken: req.AccessToken, ExpiresIn: int64(e.ttl.Seconds()),
			AccessTokenMaxTTL: int64(e.maxTTL.Seconds()), TokenType: "Bearer",
		})
	}
}

func (e *Emulator) revoke(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("revoke")
	var req struct {
		AccessToken string `json:"accessToken"`
	}
	_ = decode(r, &req)
	e.mu.Lock()
	delete(e.tokens, req.AccessToken)
	e.mu.Unlock()
	emulator.WriteJSON(w, http.StatusOK, map[string]string{"message": "Successfully revoked access token"})
}

// authed checks the bearer token the way Infisical does: missing or unknown
// tokens are 401, expired ones 403 TokenError.
func (e *Emulator) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		e.mu.Lock()
		t := e.tokens[tok]
		e.mu.Unlock()
		switch {
		case !ok || t == nil:
			e.apiError(w, http.StatusUnauthorized, "UnauthorizedError", "Failed to authenticate: missing or invalid token")
		case time.Now().After(t.expires):
			e.apiError(w, http.StatusForbidden, "TokenError", "Your token has expired. Please re-authenticate.")
		default:
			h(w, r)
		}
	}
}

// validationError is Infisical's zod failure: 422 with the issues as message.
func (e *Emulator) validationError(w http.ResponseWriter, field string) {
	e.apiError(w, http.StatusUnprocessableEntity, "ValidationFailure", []map[string]any{{
		"code": "invalid_type", "expected": "string", "received": "undefined",
		"path": []string{field}, "message": "Required",
	}})
}

// ---- secrets ----

type wireSecret struct {
	ID             string   `json:"id"`
	LegacyID       string   `json:"_id"`
	Workspace      string   `json:"workspace"`
	Environment    string   `json:"environment"`
	Version        int      `json:"version"`
	Type           string   `json:"type"`
	SecretKey      string   `json:"secretKey"`
	SecretValue    string   `json:"secretValue"`
	SecretComment  string   `json:"secretComment"`
	SecretPath     string   `json:"secretPath"`
	Tags           []string `json:"tags"`
	SecretMetadata []string `json:"secretMetadata"`
}

func toWire(project, env, p, name string, s *secret) wireSecret {
	return wireSecret{
		ID: s.id, LegacyID: s.id, Workspace: project, Environment: env, Version: s.version,
		Type: "shared", SecretKey: name, SecretValue: s.value, SecretComment: s.comment,
		SecretPath: p, Tags: []string{}, SecretMetadata: []string{},
	}
}

// scope is the project/environment/path a secrets request addresses.
type scope struct {
	Project     string `json:"workspaceId"`
	Environment string `json:"environment"`
	Path        string `json:"secretPath"`
}

func queryScope(r *http.Request) scope {
	q := r.URL.Query()
	return scope{Project: q.Get("workspaceId"), Environment: q.Get("environment"), Path: q.Get("secretPath")}
}

// resolve checks the scope's project; st is nil when the environment or the
// folder does not exist. Callers hold e.mu.
func (e *Emulator) resolveLocked(sc *scope) (st *envState, projectOK bool) {
	sc.Path = cleanPath(sc.Path)
	envs, ok := e.projects[sc.Project]
	if !ok {
		return nil, false
	}
	st = envs[sc.Environment]
	if st == nil || st.folders[sc.Path] == nil {
		return nil, true
	}
	return st, true
}

func (e *Emulator) projectNotFound(w http.ResponseWriter, id string) {
	e.apiError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("Project with ID '%s' not found", id))
}

func (e *Emulator) folderNotFound(w http.ResponseWriter, sc scope) {
	e.apiError(w, http.StatusNotFound, "NotFound",
		fmt.Sprintf("Folder with path '%s' in environment with slug '%s' not found", sc.Path, sc.Environment))
}

func (e *Emulator) secretNotFound(w http.ResponseWriter, name string) {
	e.apiError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("Secret with name '%s' not found", name))
}

func (e *Emulator) listSecrets(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("list-secrets")
	if e.fault(w, r, FaultListSecrets) {
		return
	}
	sc := queryScope(r)
	if sc.Project == "" {
		e.validationError(w, "workspaceId")
		return
	}
	recursive := r.URL.Query().Get("recursive") == "true"
	e.mu.Lock()
	st, ok := e.resolveLocked(&sc)
	// A missing folder or environment lists as empty, as in Infisical.
	out := []wireSecret{}
	if st != nil {
		for p, names := range st.secrets {
			if p != sc.Path && !(recursive && (sc.Path == "/" || strings.HasPrefix(p, sc.Path+"/"))) {
				continue
			}
			for name, s := range names {
				out = append(out, toWire(sc.Project, sc.Environment, p, name, s))
			}
		}
	}
	e.mu.Unlock()
	if !ok {
		e.projectNotFound(w, sc.Project)
		return
	}
	slices.SortFunc(out, func(a, b wireSecret) int {
		return strings.Compare(a.SecretPath+"\x00"+a.SecretKey, b.SecretPath+"\x00"+b.SecretKey)
	})
	emulator.WriteJSON(w, http.StatusOK, map[string]any{"secrets": out, "imports": []any{}})
}

func (e *Emulator) getSecret(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("get-secret")
	if e.fault(w, r, FaultListSecrets) {
		return
	}
	sc, name := queryScope(r), r.PathValue("name")
	e.mu.Lock()
	st, ok := e.resolveLocked(&sc)
	var found *wireSecret
	if st != nil {
		if s := st.secrets[sc.Path][name]; s != nil {
			ws := toWire(sc.Project, sc.Environment, sc.Path, name, s)
			found = &ws
		}
	}
	e.mu.Unlock()
	switch {
	case !ok:
		e.projectNotFound(w, sc.Project)
	case found == nil:
		e.secretNotFound(w, name)
	default:
		emulator.WriteJSON(w, http.StatusOK, map[string]any{"secret": found})
	}
}

type writeRequest struct {
	scope
	SecretValue   *string `json:"secretValue"`
	SecretComment string  `json:"secretComment"`
}

func (e *Emulator) createSecret(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("create-secret")
	if e.fault(w, r, FaultWriteSecrets) || e.denied(w, "create", "secrets") {
		return
	}
	var req writeRequest
	if err := decode(r, &req); err != nil || req.Project == "" {
		e.validationError(w, "workspaceId")
		return
	}
	name := r.PathValue("name")
	e.mu.Lock()
	st, ok := e.resolveLocked(&req.scope)
	var created *wireSecret
	exists := st != nil && st.secrets[req.Path][name] != nil
	if st != nil && !exists {
		value := ""
		if req.SecretValue != nil {
			value = *req.SecretValue
		}
		ws := toWire(req.Project, req.Environment, req.Path, name, e.upsertLocked(st, req.Path, name, value, req.SecretComment))
		created = &ws
	}
	e.mu.Unlock()
	switch {
	case !ok:
		e.projectNotFound(w, req.Project)
	case st == nil:
		e.folderNotFound(w, req.scope)
	case exists:
		e.apiError(w, http.StatusBadRequest, "BadRequest", "Secret already exist")
	default:
		emulator.WriteJSON(w, http.StatusOK, map[string]any{"secret": created})
	}
}

func (e *Emulator) updateSecret(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("update-secret")
	if e.fault(w, r, FaultWriteSecrets) || e.denied(w, "edit", "secrets") {
		return
	}
	var req writeRequest
	if err := decode(r, &req); err != nil || req.Project == "" {
		e.validationError(w, "workspaceId")
		return
	}
	name := r.PathValue("name")
	e.mu.Lock()
	st, ok := e.resolveLocked(&req.scope)
	var updated *wireSecret
	if st != nil {
		if s := st.secrets[req.Path][name]; s != nil {
			// An omitted secretValue leaves the value alone, as in Infisical.
			if req.SecretValue != nil {
				s.value = *req.SecretValue
			}
			s.version++
			ws := toWire(req.Project, req.Environment, req.Path, name, s)
			updated = &ws
		}
	}
	e.mu.Unlock()
	switch {
	case !ok:
		e.projectNotFound(w, req.Project)
	case st == nil:
		e.folderNotFound(w, req.scope)
	case updated == nil:
		e.secretNotFound(w, name)
	default:
		emulator.WriteJSON(w, http.StatusOK, map[string]any{"secret": updated})
	}
}

func (e *Emulator) deleteSecret(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("delete-secret")
	if e.fault(w, r, FaultDeleteSecrets) || e.denied(w, "delete", "secrets") {
		return
	}
	var req writeRequest
	if err := decode(r, &req); err != nil || req.Project == "" {
		e.validationError(w, "workspaceId")
		return
	}
	name := r.PathValue("name")
	e.mu.Lock()
	st, ok := e.resolveLocked(&req.scope)
	var deleted *wireSecret
	if st != nil {
		if s := st.secrets[req.Path][name]; s != nil {
			ws := toWire(req.Project, req.Environment, req.Path, name, s)
			deleted = &ws
			delete(st.secrets[req.Path], name)
			if len(st.secrets[req.Path]) == 0 {
				delete(st.secrets, req.Path)
			}
		}
	}
	e.mu.Unlock()
	switch {
	case !ok:
		e.projectNotFound(w, req.Project)
	case st == nil:
		e.folderNotFound(w, req.scope)
	case deleted == nil:
		e.secretNotFound(w, name)
	default:
		emulator.WriteJSON(w, http.StatusOK, map[string]any{"secret": deleted})
	}
}

// createFolder is idempotent and creates missing parents, like Infisical's.
func (e *Emulator) createFolder(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("create-folder")
	if e.denied(w, "create", "secret-folders") {
		return
	}
	var req struct {
		Project     string `json:"workspaceId"`
		Environment string `json:"environment"`
		Name        string `json:"name"`
		Path        string `json:"path"`
	}
	if err := decode(r, &req); err != nil || req.Project == "" || req.Name == "" {
		e.validationError(w, "name")
		return
	}
	e.mu.Lock()
	envs, ok := e.projects[req.Project]
	st := envs[req.Environment]
	var f *folder
	if st != nil {
		f = st.mkdirAll(path.Join(cleanPath(req.Path), req.Name))
	}
	e.mu.Unlock()
	switch {
	case !ok:
		e.projectNotFound(w, req.Project)
	case st == nil:
		e.apiError(w, http.StatusNotFound, "NotFound", fmt.Sprintf(
			"Environment with slug '%s' in project with ID '%s' not found", req.Environment, req.Project))
	default:
		emulator.WriteJSON(w, http.StatusOK, map[string]any{"folder": map[string]any{
			"id": f.id, "name": f.name, "version": 1, "envId": st.id, "parentId": f.parentID,
			"isReserved": false, "createdAt": f.created, "updatedAt": f.created,
		}})
	}
}

// deleteFolder answers DELETE /api/v1/folders/{id or name}: the folder at
// path/name goes with everything under it, as Infisical deletes a folder.
func (e *Emulator) deleteFolder(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("delete-folder")
	if e.denied(w, "delete", "secret-folders") {
		return
	}
	var req struct {
		Project     string `json:"workspaceId"`
		Environment string `json:"environment"`
		Path        string `json:"path"`
	}
	if err := decode(r, &req); err != nil || req.Project == "" {
		e.validationError(w, "workspaceId")
		return
	}
	e.mu.Lock()
	envs, ok := e.projects[req.Project]
	st := envs[req.Environment]
	var gone *folder
	name := r.PathValue("folder")
	if st != nil {
		parent := cleanPath(req.Path)
		for fp, f := range st.folders {
			if fp != "/" && path.Dir(fp) == parent && (f.name == name || f.id == name) {
				gone = f
				for sub := range st.folders {
					if sub == fp || strings.HasPrefix(sub, fp+"/") {
						delete(st.folders, sub)
						delete(st.secrets, sub)
					}
				}
				break
			}
		}
	}
	e.mu.Unlock()
	switch {
	case !ok:
		e.projectNotFound(w, req.Project)
	case gone == nil:
		e.apiError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("Folder with ID '%s' not found", name))
	default:
		emulator.WriteJSON(w, http.StatusOK, map[string]any{"folder": map[string]any{
			"id": gone.id, "name": gone.name, "version": 1, "envId": st.id, "parentId": gone.parentID,
			"isReserved": false, "createdAt": gone.created, "updatedAt": gone.created,
		}})
	}
}

// listFolders answers GET /api/v1/folders: the direct children of path,
// as Infisical's folder router lists them (a missing path lists empty).
func (e *Emulator) listFolders(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("list-folders")
	q := r.URL.Query()
	project, env, p := q.Get("workspaceId"), q.Get("environment"), cleanPath(q.Get("path"))
	e.mu.Lock()
	envs, ok := e.projects[project]
	st := envs[env]
	var out []map[string]any
	if st != nil {
		parent := st.folders[p]
		for fp, f := range st.folders {
			if parent != nil && fp != "/" && path.Dir(fp) == p {
				out = append(out, map[string]any{"id": f.id, "name": f.name, "version": 1, "envId": st.id,
					"parentId": f.parentID, "isReserved": false, "createdAt": f.created, "updatedAt": f.created})
			}
		}
	}
	e.mu.Unlock()
	switch {
	case !ok:
		e.projectNotFound(w, project)
	case st == nil:
		e.apiError(w, http.StatusNotFound, "NotFound", fmt.Sprintf(
			"Environment with slug '%s' in project with ID '%s' not found", env, project))
	default:
		sort.Slice(out, func(i, j int) bool { return out[i]["name"].(string) < out[j]["name"].(string) })
		if out == nil {
			out = []map[string]any{}
		}
		emulator.WriteJSON(w, http.StatusOK, map[string]any{"folders": out})
	}
}
