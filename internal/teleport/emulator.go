package teleport

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/gravitational/teleport/api/client/proto"
	userspb "github.com/gravitational/teleport/api/gen/proto/go/teleport/users/v1"
	"github.com/gravitational/teleport/api/types"
	apiutils "github.com/gravitational/teleport/api/utils"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
)

// Fault points of the Teleport emulator.
const (
	// FaultConnect fires on Ping (what Check calls).
	FaultConnect = "teleport.connect"
	// FaultCreateToken fires on CreateTokenV2 and UpsertTokenV2.
	FaultCreateToken = "teleport.create-token"
	// FaultDeleteToken fires on DeleteToken.
	FaultDeleteToken = "teleport.delete-token"
	// FaultListKube fires on ListResources and WatchEvents.
	FaultListKube = "teleport.list-kube"
	// FaultAgent fires on Join: "never" drops the join silently (the agent
	// never shows up), "error" refuses it; other kinds refuse it too.
	FaultAgent = "teleport.agent"
	// FaultKubeServer's "stale" kind has another agent, not the run's,
	// registered under the cluster's name and heartbeating (see
	// Emulator.RegisterForeign): a name alone proves nothing.
	FaultKubeServer = "teleport.kube-server"
	// FaultPermissions' "deny" kind gives the identity a role that may not
	// create or delete tokens: GetCurrentUserRoles says so, and the token
	// calls answer AccessDenied, as the auth service would.
	FaultPermissions = "teleport.permissions"
	// FaultToken's "expire" kind makes the run's first join token (the
	// first N with @N) expire EmulatorOptions.EarlyExpiry after it was
	// minted, before its agent starts: what a delivery slower than the
	// TTL, or an auth service whose clock runs ahead, does to it. GetToken
	// tells the expiry Teleport holds, and once it has passed the token is
	// gone and a join with it is refused, as with any expired token.
	FaultToken = "teleport.token"
	// FaultKubeGroups' "deny" kind maps the identity's Kubernetes access
	// to UnboundKubeGroup, a group no RBAC binding in the cluster names:
	// Teleport lets the requests through, impersonating it, and the
	// cluster's RBAC refuses them, as with a Teleport role whose
	// kubernetes_groups were never bound in the cluster.
	FaultKubeGroups = "teleport.kube-groups"
)

// UnboundKubeGroup is the group teleport.kube-groups=deny maps to.
const UnboundKubeGroup = "developers"

// DefaultEarlyExpiry is how long a token hit by teleport.token=expire lives.
const DefaultEarlyExpiry = time.Second

// DefaultServerTTL is how long Teleport keeps a kube_server after its last
// heartbeat (apidefaults.ServerAnnounceTTL in the api module: 10 minutes).
const DefaultServerTTL = 10 * time.Minute

// Counter names the emulator counts requests under.
const (
	OpPing          = "Ping"
	OpCreateToken   = "CreateToken"
	OpUpsertToken   = "UpsertToken"
	OpGetToken      = "GetToken"
	OpGetTokens     = "GetTokens"
	OpDeleteToken   = "DeleteToken"
	OpListResources = "ListResources"
	OpWatchEvents   = "WatchEvents"
	OpJoin          = "Join"
	OpRoles         = "GetCurrentUserRoles"
)

// ErrJoinRefused is returned by Emulator.Join when the token does not allow
// a kube agent to join.
var ErrJoinRefused = errors.New("join refused")

// EmulatorOptions configure an Emulator. The zero value is usable.
type EmulatorOptions struct {
	// ClusterName is the Teleport cluster's name; default "sandbox.teleport.local".
	ClusterName string
	// User is the identity IdentityFile issues; default "rawkode-cloud".
	User string
	// Roles are the user's roles; default ProvisionerRole alone.
	Roles []types.Role
	// Now is the emulator's clock for token expiry; default time.Now.
	Now func() time.Time
	// JoinDelay makes a successful Join register its kube server only after
	// this long, like a real agent's first heartbeat.
	JoinDelay time.Duration
	// ServerTTL is how long a kube server stays listed after its agent
	// left (stopped heartbeating); 0 removes it at once.
	ServerTTL time.Duration
	// EarlyExpiry is how long a token hit by FaultToken's "expire" lives;
	// default DefaultEarlyExpiry.
	EarlyExpiry time.Duration
	// NoWatch makes WatchEvents answer Unimplemented, like an auth service
	// that cannot watch, so clients must fall back to polling.
	NoWatch bool
	// Faults to share (e.g. with the sandbox's --fault flags); default a new set.
	Faults *emulator.Faults
	// OnRequest, when set, is told the counter name of every request after it
	// is counted, so tests can react to "the client is now listing" without polling.
	OnRequest func(op string)
	// OnEvent, when set, is told when a kube agent joins (EventJoined) and
	// when its kube server registers (EventRegistered), with the kube
	// cluster's name, so that a sandbox can say when an awaited condition
	// really became true. It must return quickly and not call the Emulator.
	OnEvent func(name, clusterName string, at time.Time)
	// KubeBackend is the API of a kube cluster, as its agent reaches it
	// from inside the cluster; nil (or a nil handler) when it cannot.
	KubeBackend func(kubeCluster string) http.Handler
}

// ProvisionerRole is a role allowing exactly what a provisioning run needs
// (teleport.Needed), reading tokens for destroy, and the Kubernetes access
// day-two commands use on a locked-down cluster (KubeAccessGroups on every
// kube cluster).
func ProvisionerRole() types.Role {
	r, _ := types.NewRole("rawkode-cloud-provisioner", types.RoleSpecV6{Allow: types.RoleConditions{Rules: []types.Rule{
		types.NewRule(types.KindToken, []string{types.VerbCreate, types.VerbRead, types.VerbList, types.VerbDelete}),
		types.NewRule(types.KindKubeServer, []string{types.VerbList, types.VerbRead}),
	},
		KubernetesLabels: types.Labels{types.Wildcard: {types.Wildcard}},
		KubeGroups:       KubeAccessGroups,
	}})
	return r
}

// KubeAccessGroups are the Kubernetes groups the day-two commands need
// through Teleport: the group that provisioning binds to the inside
// route's rights (pods and pods/portforward in kube-system, reading
// nodes). system:masters would do too, with every other right.
var KubeAccessGroups = []string{machineconfig.InsideRouteGroup}

// readOnlyRole is what teleport.permissions=deny leaves the identity: it
// may look at kube servers and tokens, and change nothing.
func readOnlyRole() types.Role {
	r, _ := types.NewRole("auditor", types.RoleSpecV6{Allow: types.RoleConditions{Rules: []types.Rule{
		types.NewRule(types.KindToken, []string{types.VerbRead, types.VerbList}),
		types.NewRule(types.KindKubeServer, []string{types.VerbList, types.VerbRead}),
	}}})
	return r
}

// roles are the identity's roles now.
func (e *Emulator) roles() []types.Role {
	if e.faults.Peek(FaultPermissions, emulator.Deny) {
		return []types.Role{readOnlyRole()}
	}
	roles := []types.Role{ProvisionerRole()}
	if len(e.opts.Roles) > 0 {
		roles = e.opts.Roles
	}
	if e.faults.Peek(FaultKubeGroups, emulator.Deny) {
		unbound := make([]types.Role, 0, len(roles))
		for _, r := range roles {
			v6, ok := r.(*types.RoleV6)
			if !ok || len(v6.GetKubeGroups(types.Allow)) == 0 {
				unbound = append(unbound, r)
				continue
			}
			c := apiutils.CloneProtoMsg(v6)
			c.SetKubeGroups(types.Allow, []string{UnboundKubeGroup})
			unbound = append(unbound, c)
		}
		return unbound
	}
	return roles
}

// expiresEarly reports whether the token being minted is one that
// FaultToken's "expire" hits: the first one, or the first N with @N (a
// token renewed once delivery is over is not late, so it lives its TTL).
func (e *Emulator) expiresEarly() bool {
	if !e.faults.Peek(FaultToken, emulator.Expire) {
		return false
	}
	if f, _ := e.faults.Get(FaultToken); f.Times == 0 && e.faults.Fired(FaultToken) > 0 {
		return false
	}
	_, hit := e.faults.Check(FaultToken)
	return hit
}

// authorize answers AccessDenied, as the auth service does, when the
// identity's roles do not allow verb on resource.
func (e *Emulator) authorize(resource, verb string) error {
	if ok, _ := RolesAllow(e.roles(), resource, verb); !ok {
		return status.Errorf(codes.PermissionDenied, "access denied to perform action %q on %q", verb, resource)
	}
	return nil
}

// Events reported through EmulatorOptions.OnEvent.
const (
	EventJoined     = "joined"     // an agent's join was accepted
	EventRegistered = "registered" // its kube server is listed (first heartbeat)
)

// TokenInfo describes one stored provision token (inventory for tests and the sandbox).
type TokenInfo struct {
	Name    string // the full name: this is a secret, never log it
	Roles   []string
	Expires time.Time
	Labels  map[string]string
}

// Emulator is an in-process Teleport auth service: the gRPC AuthService
// subset the client uses, over mTLS with its own CA, keeping tokens and
// kube servers in memory. Safe for concurrent use.
type Emulator struct {
	opts     EmulatorOptions
	ca       *authority
	faults   *emulator.Faults
	counters *emulator.Counters
	lis      net.Listener
	srv      *grpc.Server
	// kubeProxy serves Kubernetes access on the same address (emulator_kube.go).
	kubeProxy *kubeProxy
	done      chan struct{}
	closeOne  sync.Once
	timers    sync.WaitGroup

	mu      sync.Mutex
	tokens  map[string]*types.ProvisionTokenV2
	kube    map[string]*kubeReg // by kube cluster name + "/" + host ID
	watches map[chan *proto.Event]struct{}
	pending map[string]chan struct{} // joins awaiting their first heartbeat, by cluster
	// connectors and users: the Proxmox topology's own Teleport (emulator_sso.go).
	connectors map[string]*types.GithubConnectorV3
	users      map[string]bool
	// nodes and apps: SSH nodes and app servers (emulator_agents.go).
	nodes map[string]*types.ServerV2
	apps  map[string]*types.AppServerV3
}

// NewEmulator generates a CA and starts serving on 127.0.0.1 with a port
// chosen by the kernel.
func NewEmulator(opts EmulatorOptions) (*Emulator, error) {
	if opts.ClusterName == "" {
		opts.ClusterName = "sandbox.teleport.local"
	}
	if opts.User == "" {
		opts.User = "rawkode-cloud"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.EarlyExpiry <= 0 {
		opts.EarlyExpiry = DefaultEarlyExpiry
	}
	e := &Emulator{
		opts:     opts,
		faults:   opts.Faults,
		counters: emulator.NewCounters(),
		done:     make(chan struct{}),
		tokens:   map[string]*types.ProvisionTokenV2{},
		kube:     map[string]*kubeReg{},
		watches:  map[chan *proto.Event]struct{}{},

		connectors: map[string]*types.GithubConnectorV3{},
		users:      map[string]bool{},
		nodes:      map[string]*types.ServerV2{},
		apps:       map[string]*types.AppServerV3{},
	}
	if e.faults == nil {
		e.faults = emulator.NewFaults()
	}
	// Certificates use the wall clock: opts.Now may be moved far ahead to
	// expire tokens, which must not expire the TLS session too.
	ca, err := newAuthority(opts.ClusterName, time.Now())
	if err != nil {
		return nil, fmt.Errorf("teleport emulator: %w", err)
	}
	e.ca = ca
	serverCert, err := ca.serverTLS(time.Now())
	if err != nil {
		return nil, fmt.Errorf("teleport emulator: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.tlsCert)
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("teleport emulator: listen: %w", err)
	}
	e.lis = lis
	e.srv = grpc.NewServer(grpc.Creds(creds))
	proto.RegisterAuthServiceServer(e.srv, &authServer{e: e})
	userspb.RegisterUsersServiceServer(e.srv, &usersServer{e: e})
	if e.kubeProxy, err = newKubeProxy(e); err != nil {
		lis.Close()
		return nil, fmt.Errorf("teleport emulator: kube proxy: %w", err)
	}
	grpcLn := newConnListener()
	go e.routeConns(lis, grpcLn)
	go func() { _ = e.srv.Serve(grpcLn) }()
	return e, nil
}

// Addr is the host:port the auth service listens on (what Config.Proxy takes).
func (e *Emulator) Addr() string { return e.lis.Addr().String() }

// ClusterName is the emulated Teleport cluster's name.
func (e *Emulator) ClusterName() string { return e.opts.ClusterName }

// Faults is the emulator's fault set; see the Fault* constants.
func (e *Emulator) Faults() *emulator.Faults { return e.faults }

// Counters counts requests per Op* name.
func (e *Emulator) Counters() *emulator.Counters { return e.counters }

// IdentityFile issues an identity file for the configured user, valid for
// an hour, in the format `tctl auth sign --format=file` writes.
func (e *Emulator) IdentityFile() ([]byte, error) {
	id, err := e.ca.identity(e.opts.User, time.Now(), time.Hour)
	if err != nil {
		return nil, fmt.Errorf("teleport emulator: issue identity: %w", err)
	}
	return id, nil
}

// IdentityFor issues user an identity valid for ttl, as `tctl auth sign
// --user USER --ttl TTL` on the auth server would (the Teleport VM's first
// boot does this for its provisioner user).
func (e *Emulator) IdentityFor(user string, ttl time.Duration) ([]byte, error) {
	id, err := e.ca.identity(user, time.Now(), ttl)
	if err != nil {
		return nil, fmt.Errorf("teleport emulator: issue identity: %w", err)
	}
	return id, nil
}

// Close stops serving, releasing hanging calls and open watches.
func (e *Emulator) Close() {
	e.closeOne.Do(func() {
		close(e.done)
		e.lis.Close()
		e.srv.Stop()
		e.kubeProxy.close()
		e.timers.Wait()
	})
}

// Tokens lists the unexpired provision tokens, sorted by name. Expired ones
// are left out, as the real backend drops them at their TTL.
func (e *Emulator) Tokens() []TokenInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.opts.Now()
	var out []TokenInfo
	for _, t := range e.tokens {
		if expired(t, now) {
			continue
		}
		out = append(out, TokenInfo{
			Name:    t.GetName(),
			Roles:   t.GetRoles().StringSlice(),
			Expires: t.Expiry(),
			Labels:  copyLabels(t.GetMetadata().Labels),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// kubeReg is one registered kube server: an agent heartbeating, or one
// that left and is kept until its heartbeat TTL runs out.
type kubeReg struct {
	srv *types.KubernetesServerV3
	// left is when the agent stopped heartbeating (zero: still alive).
	left time.Time
	// foreign registrations belong to an agent outside this run's machines.
	foreign bool
}

func kubeKey(srv *types.KubernetesServerV3) string {
	return srv.GetCluster().GetName() + "/" + srv.GetHostID()
}

// listedLocked reports whether reg is still listed at now.
func (e *Emulator) listedLocked(reg *kubeReg, now time.Time) bool {
	return reg.left.IsZero() || now.Before(reg.left.Add(e.opts.ServerTTL))
}

// KubeServers lists the kube cluster names that have a live agent of this
// run's machines registered, sorted, once each. Registrations kept after
// their agent left (until the heartbeat TTL) and foreign agents are not
// anything a run created or can remove: see Registrations for those.
func (e *Emulator) KubeServers() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := map[string]bool{}
	out := make([]string, 0, len(e.kube))
	for _, reg := range e.kube {
		name := reg.srv.GetCluster().GetName()
		if reg.left.IsZero() && !reg.foreign && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Registration is one listed kube server, for tests and the sandbox.
type Registration struct {
	Cluster, HostID string
	Labels          map[string]string
	Live, Foreign   bool
}

// Registrations lists every kube server Teleport would list now.
func (e *Emulator) Registrations() []Registration {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.opts.Now()
	var out []Registration
	for _, reg := range e.kube {
		if !e.listedLocked(reg, now) {
			continue
		}
		out = append(out, Registration{Cluster: reg.srv.GetCluster().GetName(), HostID: reg.srv.GetHostID(),
			Labels: copyLabels(reg.srv.GetCluster().GetStaticLabels()), Live: reg.left.IsZero(), Foreign: reg.foreign})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Cluster+out[i].HostID < out[j].Cluster+out[j].HostID })
	return out
}

// RegisterForeign registers a kube server for clusterName from an agent
// that is not on any of this run's machines and keeps heartbeating: a
// cluster of the same name elsewhere, or an earlier cluster's agent whose
// registration has not expired yet.
func (e *Emulator) RegisterForeign(clusterName string, labels map[string]string) error {
	srv, err := newKubeServer(clusterName, labels)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.kube[kubeKey(srv)] = &kubeReg{srv: srv, foreign: true}
	e.mu.Unlock()
	e.broadcast(types.OpPut, srv)
	return nil
}

// Join is a kube agent joining with token for kube cluster clusterName.
// Like real Teleport, a token with a TTL stays usable by further agents
// until it expires. With JoinDelay the kube server appears that much later.
func (e *Emulator) Join(token, clusterName string) error {
	return e.JoinWithLabels(token, clusterName, nil)
}

// JoinWithLabels is Join by an agent whose teleport.yaml gives the kube
// cluster static labels (kubernetes_service.labels).
func (e *Emulator) JoinWithLabels(token, clusterName string, labels map[string]string) error {
	e.count(OpJoin)
	if kind, ok := e.faults.Check(FaultAgent); ok {
		if kind == emulator.Never {
			return nil
		}
		return fmt.Errorf("%w: emulated %s fault", ErrJoinRefused, kind)
	}
	if clusterName == "" {
		return fmt.Errorf("%w: empty kube cluster name", ErrJoinRefused)
	}
	if err := e.checkJoinToken(token, types.RoleKube); err != nil {
		return err
	}
	srv, err := newKubeServer(clusterName, labels)
	if err != nil {
		return err
	}
	e.event(EventJoined, clusterName)
	if e.opts.JoinDelay <= 0 {
		e.register(srv)
		return nil
	}
	// The agent's first heartbeat comes later; an agent that leaves (its
	// machine deleted) before then never registers.
	e.mu.Lock()
	if e.pending == nil {
		e.pending = map[string]chan struct{}{}
	}
	left := make(chan struct{})
	if old, ok := e.pending[clusterName]; ok {
		close(old)
	}
	e.pending[clusterName] = left
	e.mu.Unlock()
	e.timers.Add(1)
	go func() {
		defer e.timers.Done()
		t := time.NewTimer(e.opts.JoinDelay)
		defer t.Stop()
		select {
		case <-t.C:
			// Checked and registered under one lock: a Leave in between
			// would otherwise find nothing to remove, and the kube server
			// would outlive its machine.
			e.mu.Lock()
			current := e.pending[clusterName] == left
			if current {
				delete(e.pending, clusterName)
				e.kube[kubeKey(srv)] = &kubeReg{srv: srv}
			}
			e.mu.Unlock()
			if current {
				e.event(EventRegistered, clusterName)
				e.broadcast(types.OpPut, srv)
			}
		case <-left:
		case <-e.done:
		}
	}()
	return nil
}

// Leave is the agents of clusterName on this run's machines going away, as
// when their node is destroyed: they stop heartbeating, and Teleport keeps
// listing their kube servers until ServerTTL has passed.
func (e *Emulator) Leave(clusterName string) {
	e.mu.Lock()
	if left, ok := e.pending[clusterName]; ok {
		close(left)
		delete(e.pending, clusterName)
	}
	now := e.opts.Now()
	var gone []*types.KubernetesServerV3
	for key, reg := range e.kube {
		if reg.foreign || reg.srv.GetCluster().GetName() != clusterName || !reg.left.IsZero() {
			continue
		}
		if e.opts.ServerTTL <= 0 {
			delete(e.kube, key)
			gone = append(gone, reg.srv)
			continue
		}
		reg.left = now
		reg.srv.SetExpiry(now.Add(e.opts.ServerTTL))
	}
	e.mu.Unlock()
	for _, srv := range gone {
		e.broadcast(types.OpDelete, srv)
	}
}

func newKubeServer(clusterName string, labels map[string]string) (*types.KubernetesServerV3, error) {
	cluster, err := types.NewKubernetesClusterV3(types.Metadata{Name: clusterName, Labels: copyLabels(labels)}, types.KubernetesClusterSpecV3{})
	if err != nil {
		return nil, fmt.Errorf("%w: kube cluster %q: %v", ErrJoinRefused, clusterName, err)
	}
	hostID := randomHex(16)
	return types.NewKubernetesServerV3FromCluster(cluster, "teleport-kube-agent-0", hostID)
}

func (e *Emulator) register(srv *types.KubernetesServerV3) {
	e.mu.Lock()
	e.kube[kubeKey(srv)] = &kubeReg{srv: srv}
	e.mu.Unlock()
	e.event(EventRegistered, srv.GetCluster().GetName())
	e.broadcast(types.OpPut, srv)
}

func (e *Emulator) event(name, cluster string) {
	if e.opts.OnEvent != nil {
		e.opts.OnEvent(name, cluster, time.Now())
	}
}

func (e *Emulator) count(op string) {
	e.counters.Inc(op)
	if e.opts.OnRequest != nil {
		e.opts.OnRequest(op)
	}
}

func expired(t *types.ProvisionTokenV2, now time.Time) bool {
	exp := t.Expiry()
	return !exp.IsZero() && !now.Before(exp)
}

func copyLabels(in map[string]string) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails: see crypto/rand.Read
	return hex.EncodeToString(b)
}

// checkJoinToken refuses a join as the auth service does: an unknown or
// expired token, or one that does not carry the role the agent joins as.
func (e *Emulator) checkJoinToken(token string, role types.SystemRole) error {
	e.mu.Lock()
	t, ok := e.tokens[token]
	now := e.opts.Now()
	e.mu.Unlock()
	switch {
	case !ok:
		return fmt.Errorf("%w: token %s not found", ErrJoinRefused, Redact(token))
	case expired(t, now):
		return fmt.Errorf("%w: token %s expired", ErrJoinRefused, Redact(token))
	case !slices.Contains(t.GetRoles(), role):
		return fmt.Errorf("%w: token %s does not allow role %s", ErrJoinRefused, Redact(token), role)
	}
	return nil
}
