package emulator

import (
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// state is everything the node holds. Guarded by Emulator.mu.
type state struct {
	node, version string
	started       time.Time
	users         map[string]*user
	acls          []acl
	network       map[string]*iface // running configuration
	pending       map[string]*iface // /etc/network/interfaces.new; nil entry = deleted
	netChanged    bool
	clusterFW     fwOptions
	nodeFW        fwOptions
	clusterRules  []*fwRule
	nodeRules     []*fwRule
	ipsets        map[string]*ipset // the datacenter's IP sets
	storages      map[string]*storage
	tasks         map[string]*task
	taskOrder     []string
	vms           map[int]*vm
}

type user struct {
	id, comment string
	hash        string // only for @pam/@pve users that can log in
	enabled     bool
	expire      int64
	tokens      map[string]*token
}

type token struct {
	secret, comment string
	privsep         bool
	expire          int64
}

type acl struct {
	path, ugid, kind, role string // kind: user, token, group
	propagate              bool
}

type iface struct {
	Iface, Type, CIDR, Address, Netmask, Gateway, BridgePorts, Comments string
	Autostart, VLANAware                                                bool
}

type fwOptions struct {
	enable                         bool
	policyIn, policyOut, policyFwd string
}

type fwRule struct {
	Type, Action, Source, Dest, Dport, Sport, Proto, Iface, Comment, Macro, Log string
	Enable                                                                      bool
}

type storage struct {
	id, typ, path string
	content       map[string]bool
	shared        bool
	volumes       map[string]*volume
	nodes         string
}

type volume struct {
	volid, content, format string
	size                   int64
	ctime                  int64
	data                   []byte // an upload's bytes, for tests to inspect
}

type vm struct {
	vmid    int
	config  map[string]string
	running bool
	lock    string
	// guest is what the guest agent can read inside the VM (agent.go).
	guest map[string][]byte
	execs []execResult
}

func newState(node, version, rootHash string, now time.Time) *state {
	st := &state{
		node: node, version: version, started: now,
		users: map[string]*user{
			"root@pam": {id: "root@pam", comment: "", hash: rootHash, enabled: true, tokens: map[string]*token{}},
		},
		network: map[string]*iface{
			// What the installer leaves: the uplink enslaved to vmbr0.
			"eno1":  {Iface: "eno1", Type: "eth"},
			"vmbr0": {Iface: "vmbr0", Type: "bridge", BridgePorts: "eno1", Autostart: true, CIDR: "203.0.113.10/24", Address: "203.0.113.10", Netmask: "24", Gateway: "203.0.113.1"},
		},
		pending:   map[string]*iface{},
		clusterFW: fwOptions{policyIn: "DROP", policyOut: "ACCEPT", policyFwd: "ACCEPT"},
		nodeFW:    fwOptions{enable: true},
		storages: map[string]*storage{
			// A ZFS install's defaults: a directory storage and the pool for
			// guest disks. There is no local-lvm on such a host.
			"local":     {id: "local", typ: "dir", path: "/var/lib/vz", content: set("iso", "vztmpl", "backup"), volumes: map[string]*volume{}},
			"local-zfs": {id: "local-zfs", typ: "zfspool", content: set("images", "rootdir"), volumes: map[string]*volume{}},
		},
		tasks:  map[string]*task{},
		vms:    map[int]*vm{},
		ipsets: map[string]*ipset{},
	}
	return st
}

func set(items ...string) map[string]bool {
	m := map[string]bool{}
	for _, i := range items {
		m[i] = true
	}
	return m
}

// versionAtLeast compares the node's "major.minor[.patch]" with want.
func (st *state) versionAtLeast(major, minor int) bool {
	var ma, mi int
	fmt.Sscanf(st.version, "%d.%d", &ma, &mi)
	return ma > major || (ma == major && mi >= minor)
}

// ---- permissions ----------------------------------------------------------

// roles are PVE's built-in roles, by the privileges that matter here.
// PVEAdmin lacks Sys.Modify, which is why network and firewall changes
// need Administrator.
var roles = map[string][]string{
	"Administrator": {"*"},
	"PVEAdmin": {"Sys.Audit", "Sys.Console", "Sys.Syslog", "Datastore.Allocate", "Datastore.AllocateSpace",
		"Datastore.AllocateTemplate", "Datastore.Audit", "VM.Allocate", "VM.Audit", "VM.Config.Disk", "VM.Config.CDROM",
		"VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.Options", "VM.Config.HWType",
		"VM.Config.Cloudinit", "VM.PowerMgmt", "VM.Console", "User.Modify", "Group.Allocate", "Pool.Allocate", "SDN.Use",
		"Sys.AccessNetwork"},
	"PVEAuditor": {"Sys.Audit", "Datastore.Audit", "VM.Audit"},
	"NoAccess":   {},
}

// hasPriv reports whether the request's identity holds priv on path,
// following ACL propagation and a token's privilege separation.
func (st *state) hasPriv(q *request, path, priv string) bool {
	if q.user == "root@pam" && q.token == "" {
		return true
	}
	userOK := st.identityHas("user", q.user, path, priv)
	if q.token == "" {
		return userOK
	}
	userID, tokenID, _ := strings.Cut(q.token, "!")
	t := st.users[userID].tokens[tokenID]
	if q.user == "root@pam" {
		userOK = true
	}
	if !t.privsep {
		return userOK
	}
	return userOK && st.identityHas("token", q.token, path, priv)
}

func (st *state) identityHas(kind, id, path, priv string) bool {
	best, bestLen := false, -1
	for _, a := range st.acls {
		if a.kind != kind || a.ugid != id {
			continue
		}
		applies := a.path == path || (a.propagate && (a.path == "/" || strings.HasPrefix(path, a.path+"/")))
		if !applies || len(a.path) < bestLen {
			continue
		}
		privs := roles[a.role]
		has := false
		for _, p := range privs {
			has = has || p == "*" || p == priv
		}
		if len(a.path) > bestLen {
			best = has
		} else {
			best = best || has
		}
		bestLen = len(a.path)
	}
	return best
}

// authorize evaluates the description's permission check for the request.
func (e *Emulator) authorize(q *request) *pveError {
	perm := q.op.Permissions
	if perm == nil || perm.User == "all" || perm.User == "world" {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if ok, missing := e.evalCheck(q, perm.Check); !ok {
		return errf(http.StatusForbidden, "Permission check failed (%s)", missing)
	}
	return nil
}

func (e *Emulator) evalCheck(q *request, check []any) (bool, string) {
	if len(check) == 0 {
		return true, ""
	}
	kind, _ := check[0].(string)
	switch kind {
	case "and", "or":
		var last string
		for _, c := range check[1:] {
			sub, _ := c.([]any)
			ok, missing := e.evalCheck(q, sub)
			if kind == "and" && !ok {
				return false, missing
			}
			if kind == "or" && ok {
				return true, ""
			}
			last = missing
		}
		return kind == "and", last
	case "perm":
		path := substitute(fmt.Sprint(check[1]), q.params)
		privs, _ := check[2].([]any)
		anyOf := len(check) > 3 && fmt.Sprint(check[3]) == "any"
		for _, p := range privs {
			has := e.st.hasPriv(q, path, fmt.Sprint(p))
			if anyOf && has {
				return true, ""
			}
			if !anyOf && !has {
				return false, fmt.Sprintf("%s, %s", path, p)
			}
		}
		return !anyOf, fmt.Sprintf("%s, %v", path, privs)
	case "perm-modify":
		path := substitute(fmt.Sprint(check[1]), q.params)
		if e.st.hasPriv(q, path, "Permissions.Modify") {
			return true, ""
		}
		return false, fmt.Sprintf("%s, Permissions.Modify", path)
	case "userid-param":
		if fmt.Sprint(check[1]) == "self" {
			return q.p("userid") == q.user && q.token == "", fmt.Sprintf("userid-param, self")
		}
		realm := q.p("userid")[strings.LastIndex(q.p("userid"), "@")+1:]
		path := "/access/realm/" + realm
		return e.st.hasPriv(q, path, fmt.Sprint(check[1])), fmt.Sprintf("%s, %v", path, check[1])
	case "userid-group":
		privs, _ := check[1].([]any)
		for _, p := range privs {
			if !e.st.hasPriv(q, "/access/groups", fmt.Sprint(p)) {
				return false, fmt.Sprintf("/access/groups, %v", p)
			}
		}
		return true, ""
	}
	return false, fmt.Sprint(check)
}

func substitute(path string, params map[string]string) string {
	for k, v := range params {
		path = strings.ReplaceAll(path, "{"+k+"}", v)
	}
	return path
}

// ---- the firewall's view of the API port ---------------------------------

// admitted reports whether the host's firewall lets the request's source
// reach port 8006. PVE's host firewall applies when the datacenter
// firewall is enabled and the node's is not turned off; then the rules of
// both levels are tried in order, and policy_in decides the rest.
func (e *Emulator) admitted(r *http.Request) bool {
	src := e.opts.Operator
	if e.opts.Client != nil {
		src = e.opts.Client(r)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st.admits(src, "vmbr0", APIPort)
}

// Reachable reports whether src, arriving on the public bridge, would reach
// TCP port on the host: the view of a port scan from src.
func (e *Emulator) Reachable(src netip.Addr, port int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st.admits(src, "vmbr0", port)
}

func (st *state) admits(src netip.Addr, in string, port int) bool {
	if !st.clusterFW.enable || !st.nodeFW.enable {
		return true
	}
	for _, rules := range [][]*fwRule{st.clusterRules, st.nodeRules} {
		for _, r := range rules {
			if !r.Enable || r.Type != "in" || !r.matches(src, in, port) {
				continue
			}
			return r.Action == "ACCEPT"
		}
	}
	return st.clusterFW.policyIn == "ACCEPT"
}

func (r *fwRule) matches(src netip.Addr, in string, port int) bool {
	if r.Iface != "" && r.Iface != in {
		return false
	}
	if r.Proto != "" && r.Proto != "tcp" {
		return false
	}
	if r.Source != "" {
		hit := false
		for _, s := range strings.Split(r.Source, ",") {
			if p, err := netip.ParsePrefix(s); err == nil && p.Contains(src) {
				hit = true
			}
			if a, err := netip.ParseAddr(s); err == nil && a == src {
				hit = true
			}
		}
		if !hit {
			return false
		}
	}
	if r.Dport != "" {
		hit := false
		for _, d := range strings.Split(r.Dport, ",") {
			lo, hi, isRange := strings.Cut(d, ":")
			if !isRange {
				hi = lo
			}
			if atoi(lo) <= port && port <= atoi(hi) {
				hit = true
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

// ---- inventory ------------------------------------------------------------

// Rule is a firewall rule as the inventory shows it; Scope is "cluster" or
// "node/<name>" and Pos its position.
type Rule struct {
	Scope, Type, Action, Source, Dport, Proto, Iface, Comment string
	Pos                                                       int
	Enable                                                    bool
}

// Bridge is an applied Linux bridge.
type Bridge struct{ Iface, CIDR string }

// VM is a guest as the inventory shows it.
type VM struct {
	VMID    int
	Name    string
	Tags    []string
	Running bool
}

// Snapshot is what exists on the node, for the sandbox's inventory.
type Snapshot struct {
	Node, Version   string
	Bridges         []Bridge
	FirewallEnabled bool
	PolicyIn        string
	Rules           []Rule
	IPSets          map[string][]string // datacenter IP set name → entries as stored
	Users           []string
	Tokens          []string // full token IDs
	StorageContent  map[string][]string
	Volumes         []string
	VMs             []VM
	PendingNetwork  bool
}

// Snapshot returns the node's current state.
func (e *Emulator) Snapshot() Snapshot {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.settle()
	st := e.st
	s := Snapshot{Node: st.node, Version: st.version, FirewallEnabled: st.clusterFW.enable, PolicyIn: st.clusterFW.policyIn,
		StorageContent: map[string][]string{}, PendingNetwork: st.netChanged, IPSets: map[string][]string{}}
	for _, name := range sortedKeys(st.network) {
		if i := st.network[name]; i.Type == "bridge" && i.CIDR != "" {
			s.Bridges = append(s.Bridges, Bridge{Iface: name, CIDR: i.CIDR})
		}
	}
	for pos, r := range st.clusterRules {
		s.Rules = append(s.Rules, r.public("cluster", pos))
	}
	for pos, r := range st.nodeRules {
		s.Rules = append(s.Rules, r.public("node/"+st.node, pos))
	}
	for _, name := range sortedKeys(st.ipsets) {
		entries := []string{}
		for _, en := range st.ipsets[name].entries {
			entries = append(entries, en.cidr)
		}
		s.IPSets[name] = entries
	}
	for _, id := range sortedKeys(st.users) {
		s.Users = append(s.Users, id)
		for _, t := range sortedKeys(st.users[id].tokens) {
			s.Tokens = append(s.Tokens, id+"!"+t)
		}
	}
	for _, id := range sortedKeys(st.storages) {
		sto := st.storages[id]
		s.StorageContent[id] = sortedKeys(sto.content)
		for _, v := range sortedKeys(sto.volumes) {
			s.Volumes = append(s.Volumes, v)
		}
	}
	ids := make([]int, 0, len(st.vms))
	for id := range st.vms {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		v := st.vms[id]
		s.VMs = append(s.VMs, VM{VMID: id, Name: v.config["name"], Tags: splitList(v.config["tags"]), Running: v.running})
	}
	return s
}

func (r *fwRule) public(scope string, pos int) Rule {
	return Rule{Scope: scope, Pos: pos, Type: r.Type, Action: r.Action, Source: r.Source, Dport: r.Dport, Proto: r.Proto,
		Iface: r.Iface, Comment: r.Comment, Enable: r.Enable}
}

// SetStorage configures a storage as the host's own setup left it
// (pvesm add / pvesm set on first boot): no request counted, no fault.
func (e *Emulator) SetStorage(id, typ string, content []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.st.storages[id]
	if s == nil {
		s = &storage{id: id, typ: typ, volumes: map[string]*volume{}}
		if typ == "dir" {
			s.path = "/var/lib/vz"
		}
		e.st.storages[id] = s
	}
	s.content = set(content...)
}
