package sandbox

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	kubeemulator "github.com/rawkode/rawkode-cloud/internal/kube/emulator"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
	"github.com/rawkode/rawkode-cloud/internal/talos"
	"github.com/rawkode/rawkode-cloud/internal/teleport"
)

// Names of the sandbox timeline's events. Each is the moment something the
// CLI waits for really became true, as the emulator that made it true saw it.
const (
	TimelineOrdered        = "scaleway: ordered"
	TimelineIPAssigned     = "scaleway: ip assigned"
	TimelineDelivered      = "scaleway: delivered (ready)"
	TimelineInstalling     = "scaleway: install started"
	TimelineInstalled      = "scaleway: install completed"
	TimelineServerError    = "scaleway: error"
	TimelineMaintenance    = "talos: " + talos.EventMaintenance
	TimelineTaken          = "talos: " + talos.EventTaken
	TimelineApplied        = "talos: " + talos.EventApplied
	TimelineConfigured     = "talos: " + talos.EventConfigured
	TimelineEtcdReady      = "talos: " + talos.EventEtcdReady
	TimelineBootstrapped   = "talos: " + talos.EventBootstrapped
	TimelineHealthyPrefix  = "talos: " + talos.EventHealthyPrefix
	TimelineServicesHealth = "talos: services healthy" // derived: the last of the four
	// TimelineAgentTry is the emulated kube agent trying to join (its
	// pod may not run yet), per node IP: the replayed chain takes its
	// retries' real times, timer lateness included.
	TimelineAgentTry    = "sandbox: kube agent tries to join"
	TimelineAgentJoined = "teleport: " + teleport.EventJoined
	TimelineRegistered  = "teleport: " + teleport.EventRegistered
	// TimelineKubernetesReady is derived: CoreDNS ready and every node that
	// registered so far Ready, per cluster.
	TimelineKubernetesReady = "kubernetes: ready"
	// TimelineNodesReady is derived: the last node that registered so far
	// Ready, per cluster.
	TimelineNodesReady = "kubernetes: nodes ready"
	// The Kubernetes layer between a healthy etcd and the kube agent's
	// registration, as the emulated cluster reports it (per node where the
	// name ends in ":", followed by the node's name).
	TimelineKubeNodeRegistered = "kubernetes: " + kubeemulator.EventNodeRegistered
	TimelineCNIRunning         = "kubernetes: " + kubeemulator.EventCNIRunning
	TimelineNodeReady          = "kubernetes: " + kubeemulator.EventNodeReady
	TimelineAgentPodRunning    = "kubernetes: " + kubeemulator.EventWorkloadReady + "StatefulSet/" + machineconfig.TeleportNamespace + "/" + machineconfig.TeleportAgentName
	TimelineCoreDNSRunning     = "kubernetes: " + kubeemulator.EventWorkloadReady + "Deployment/kube-system/coredns"
)

// TimelineEvent is one emulated event.
type TimelineEvent struct {
	Name    string    `json:"name"`
	Subject string    `json:"subject"` // server ID, node IP or kube cluster
	At      time.Time `json:"at"`
}

// timeline collects events from every emulator, under its own lock: the
// emulators report with their own locks held.
type timeline struct {
	mu      sync.Mutex
	events  []TimelineEvent
	ordered map[string]bool
}

func (t *timeline) add(name, subject string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events = append(t.events, TimelineEvent{Name: name, Subject: subject, At: at})
}

// server turns a Scaleway lifecycle change into timeline events.
func (t *timeline) server(s scaleway.Server) {
	t.mu.Lock()
	if t.ordered == nil {
		t.ordered = map[string]bool{}
	}
	first := !t.ordered[s.ID]
	t.ordered[s.ID] = true
	t.mu.Unlock()
	if first && !s.CreatedAt.IsZero() {
		t.add(TimelineOrdered, s.ID, s.CreatedAt)
	}
	now := time.Now()
	switch {
	case s.Status == "error":
		t.add(TimelineServerError, s.ID, now)
	case s.Status == "ordered" && s.IPv4 != "":
		t.add(TimelineIPAssigned, s.ID, now)
	case s.InstallStatus == "to_install" && s.Status == "ready":
		t.add(TimelineDelivered, s.ID, now)
	case s.InstallStatus == "installing":
		t.add(TimelineInstalling, s.ID, now)
	case s.InstallStatus == "completed":
		t.add(TimelineInstalled, s.ID, now)
	case s.InstallStatus == "error":
		t.add(TimelineServerError, s.ID, now)
	}
}

// Timeline returns every emulated event so far, oldest first, with the
// derived "services healthy" event (when the last of the services the CLI
// waits for became healthy) added per node.
func (s *Sandbox) Timeline() []TimelineEvent {
	s.tl.mu.Lock()
	out := append([]TimelineEvent(nil), s.tl.events...)
	s.tl.mu.Unlock()
	healthy := map[string]map[string]time.Time{}
	for _, e := range out {
		if svc, ok := strings.CutPrefix(e.Name, TimelineHealthyPrefix); ok {
			if healthy[e.Subject] == nil {
				healthy[e.Subject] = map[string]time.Time{}
			}
			if _, seen := healthy[e.Subject][svc]; !seen {
				healthy[e.Subject][svc] = e.At
			}
		}
	}
	for node, svcs := range healthy {
		var last time.Time
		all := true
		for _, name := range s.awaitedServices(node) {
			at, ok := svcs[name]
			if !ok {
				all = false
				break
			}
			if at.After(last) {
				last = at
			}
		}
		if all && len(svcs) > 0 {
			out = append(out, TimelineEvent{Name: TimelineServicesHealth, Subject: node, At: last})
		}
	}
	out = append(out, kubernetesReady(out)...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// awaitedServices are the services the CLI waits for on the node at ip:
// a worker runs only kubelet and apid (provision.WorkerServices), a control
// plane every service of the profile.
func (s *Sandbox) awaitedServices(ip string) []string {
	if n := s.Node(ip); n != nil && n.Worker() {
		return []string{talos.ServiceKubelet, talos.ServiceAPID}
	}
	out := make([]string, 0, len(s.profile.Services))
	for name := range s.profile.Services {
		out = append(out, name)
	}
	return out
}

// kubernetesReady derives TimelineKubernetesReady per cluster: the later of
// CoreDNS ready (it needs the CNI) and the last node Ready; and
// TimelineNodesReady: the last node Ready.
func kubernetesReady(events []TimelineEvent) []TimelineEvent {
	last, nodes := map[string]time.Time{}, map[string]time.Time{}
	dns := map[string]bool{}
	for _, e := range events {
		name, ok := strings.CutPrefix(e.Name, "kubernetes: ")
		if !ok {
			continue
		}
		coredns := name == kubeemulator.EventWorkloadReady+"Deployment/kube-system/coredns"
		if coredns {
			dns[e.Subject] = true
		}
		node := strings.HasPrefix(name, kubeemulator.EventNodeReady)
		if (coredns || node) && e.At.After(last[e.Subject]) {
			last[e.Subject] = e.At
		}
		if node && e.At.After(nodes[e.Subject]) {
			nodes[e.Subject] = e.At
		}
	}
	var out []TimelineEvent
	for cluster, at := range nodes {
		out = append(out, TimelineEvent{Name: TimelineNodesReady, Subject: cluster, At: at})
	}
	for cluster, at := range last {
		if dns[cluster] {
			out = append(out, TimelineEvent{Name: TimelineKubernetesReady, Subject: cluster, At: at})
		}
	}
	return out
}

// First is the time of the first timeline event with that name (false when
// it has not happened). A name ending in ":" is a per-node event: the first
// of any node counts.
func First(tl []TimelineEvent, name string) (time.Time, bool) {
	for _, e := range tl {
		if e.Name == name || strings.HasSuffix(name, ":") && strings.HasPrefix(e.Name, name) {
			return e.At, true
		}
	}
	return time.Time{}, false
}

// waitConditions maps a wait's title (as the provision phases announce it)
// to the timeline event that makes it true. Prefix match: the titles carry
// IDs and addresses.
var waitConditions = []struct{ prefix, event string }{
	{"public IPv4 of server ", TimelineIPAssigned},
	{"servers of cluster ", TimelineInstalled}, // the one status poll for every server
	{"server ", TimelineInstalled},             // "server <id> delivery and OS install"
	{"Talos maintenance mode on ", TimelineMaintenance},
	{"Talos API over mTLS on ", TimelineConfigured},
	{"etcd bootstrap", TimelineEtcdReady},
	{"etcd, kubelet, apid, trustd healthy", TimelineServicesHealth},
	{"kubelet, apid healthy", TimelineServicesHealth},
	{"kube agent of ", TimelineRegistered},
	{"Kubernetes: every node registered and Ready", TimelineNodesReady},
	{"Kubernetes: the CNI and CoreDNS", TimelineKubernetesReady},
}

// ConditionTime says when the condition a wait (by its title) awaited
// became true in the emulators; false when unknown.
func ConditionTime(tl []TimelineEvent, wait string) (time.Time, string, bool) {
	if strings.HasSuffix(wait, " to be deleted") {
		return time.Time{}, "", false
	}
	for _, c := range waitConditions {
		if strings.HasPrefix(wait, c.prefix) {
			// Per node: the event whose subject (server ID, node IP) the
			// title names; a title naming none (the etcd bootstrap) takes
			// the first.
			for _, e := range tl {
				if e.Name == c.event && e.Subject != "" && strings.HasSuffix(wait, " "+e.Subject) || e.Name == c.event && e.Subject != "" && strings.Contains(wait, " "+e.Subject+" ") {
					return e.At, c.event, true
				}
			}
			at, ok := First(tl, c.event)
			return at, c.event, ok
		}
	}
	return time.Time{}, "", false
}

// Segment is one link of the emulated critical path.
type Segment struct {
	From, To string
	// Model is the duration the profile gives (sandbox time).
	Model time.Duration
	// Observed is the same link measured on the timeline (sandbox time);
	// zero with ok false when either end is missing.
	Observed   time.Duration
	ObservedOK bool
}

// CriticalPath is what a CLI reacting instantly and doing no work would
// take, from the order to the end, computed from the profile along the
// dependency chain.
type CriticalPath struct {
	// Total in sandbox time; Real is the same in real time.
	Total, Real time.Duration
	// Replayed is the same chain with each emulator-driven link measured on
	// the timeline instead of taken from the profile: the difference to
	// Total is the emulators' own timer slop, which the CLI cannot help.
	Replayed time.Duration
	// Steps are the modelled times of each event from the order (sandbox time).
	Steps []Step
	// Segments compare each emulator-driven link with the timeline.
	Segments []Segment
	// Reactions are the links the CLI drives, measured on the timeline,
	// with how much of each held the chain up.
	Reactions []Reaction
	// Ordered is when the first server was ordered and End when the last
	// event the run ends on happened (services healthy, the agent
	// registered, CoreDNS running); false when the timeline lacks either.
	Ordered, End time.Time
	EndsOK       bool
}

// Reaction is a link of the chain that the model takes as instant because
// the CLI drives it: from the event it waits for to the event its answer
// causes (e.g. maintenance mode → the config taken: the probe noticing,
// then the apply).
type Reaction struct {
	From, To string
	// FromAt is when From happened; Observed the link on the timeline
	// (sandbox time), zero when either end is missing.
	FromAt   time.Time
	Observed time.Duration
	// OnPath is how much later the replayed chain ends with this link as
	// observed than with it instant (the links after it as observed): a
	// reaction the chain had slack for costs nothing.
	OnPath time.Duration
}

// Step is a modelled event time.
type Step struct {
	Event string
	At    time.Duration
}

// links are the emulator-driven durations of the chain (sandbox time).
type links struct {
	assignIP, deliver, startInstall, install, pivot, linger, reboot, etcdReady time.Duration
	// The CLI's reactions, zero in the model: maintenance → config taken
	// (the probe noticing, then the apply) and etcd ready → bootstrapped.
	apply, bootstrap time.Duration
	services         map[string]time.Duration // etcd: from the bootstrap; others: from configured
	// The Kubernetes layer: the node registers once etcd is healthy (Talos
	// starts its kubelet registration and manifest apply then); the CNI's
	// pod (host network) starts podStart after that, the node's network is
	// ready cniReady later, and pods on the pod network (the kube agent,
	// CoreDNS) start podStart after that.
	register, cniPod, cniReady, agentPod, coreDNS time.Duration
	agentStart, agentRetry, heartbeat             time.Duration
	// tries are the agent's tries after configured as observed (the
	// replay); nil: at agentStart, then every agentRetry (the model).
	tries []time.Duration
	// join is from the try that finds the pod running to the join (the
	// emulated Teleport issuing the agent's identity): zero in the model.
	join time.Duration
}

// chain walks the dependency chain with a CLI that reacts instantly.
func (l links) chain() []Step {
	ip := l.assignIP
	delivered := ip + l.deliver
	installing := delivered + l.startInstall
	installed := installing + l.install
	maintenance := installed + l.pivot
	// The maintenance API answers the apply, lingers, then the node goes
	// down to reboot into its config.
	applied := maintenance + l.apply + l.linger
	configured := applied + l.reboot
	etcdReady := configured + l.etcdReady
	etcdHealthy := etcdReady + l.bootstrap + l.services[talos.ServiceEtcd]
	services := etcdHealthy
	for name, d := range l.services {
		if name != talos.ServiceEtcd {
			services = max(services, configured+d)
		}
	}
	nodeRegistered := etcdHealthy + l.register
	cniRunning := nodeRegistered + l.cniPod
	nodeReady := cniRunning + l.cniReady
	agentPod := nodeReady + l.agentPod
	coreDNS := nodeReady + l.coreDNS
	// The agent's retries, exactly as startAgent schedules them: it joins
	// on its first try after its pod runs.
	join := configured + l.agentStart
	if len(l.tries) > 0 {
		join = configured + l.tries[0]
	}
	for i := 1; join < agentPod; i++ {
		if i < len(l.tries) {
			join = configured + l.tries[i]
		} else {
			join += l.agentRetry
		}
	}
	join += l.join
	registered := join + l.heartbeat
	return []Step{
		{TimelineIPAssigned, ip}, {TimelineDelivered, delivered}, {TimelineInstalling, installing},
		{TimelineInstalled, installed}, {TimelineMaintenance, maintenance}, {TimelineApplied, applied}, {TimelineConfigured, configured},
		{TimelineEtcdReady, etcdReady}, {TimelineServicesHealth, services},
		{TimelineKubeNodeRegistered, nodeRegistered}, {TimelineCNIRunning, cniRunning}, {TimelineNodeReady, nodeReady},
		{TimelineAgentPodRunning, agentPod}, {TimelineCoreDNSRunning, coreDNS}, {TimelineAgentJoined, join},
		{TimelineRegistered, registered}, {"end", max(services, registered, coreDNS)},
	}
}

// CriticalPath computes the emulated critical path of a provisioning from
// the profile, in sandbox time:
//
//	order → IP → delivered → install started → install completed → pivot → maintenance;
//	apply (instantly) → the maintenance API lingers → reboot → configured;
//	configured → etcd ready → bootstrap (instantly) → etcd healthy;
//	the other services count from configured;
//	etcd healthy → node registered → CNI pod running → node Ready → the
//	kube agent's pod and CoreDNS running;
//	the kube agent starts AgentStart after configured, retries until its
//	pod runs, then registers AgentHeartbeat later;
//	end = max(all services healthy, registered, CoreDNS running).
//
// It also measures every emulator-driven link on the timeline.
func (s *Sandbox) CriticalPath() CriticalPath {
	p, sc := s.profile, s.Scaled
	model := links{
		assignIP: sc(p.AssignIP), deliver: sc(p.Deliver), startInstall: sc(p.StartInstall), install: sc(p.Install),
		pivot: sc(p.Pivot), linger: sc(p.MaintenanceLinger), reboot: sc(p.Reboot), etcdReady: sc(p.EtcdReady), services: map[string]time.Duration{},
		agentStart: sc(p.AgentStart), agentRetry: sc(p.AgentStart)/4 + time.Millisecond, heartbeat: sc(p.AgentHeartbeat),
		cniPod: sc(podStart), cniReady: sc(cniReady), agentPod: sc(podStart), coreDNS: sc(podStart),
	}
	for name, d := range p.Services {
		model.services[name] = sc(d)
	}
	tl := s.Timeline()
	if p.Jitter > 0 {
		model = model.paced(slowestPace(tl, model))
	}
	steps := model.chain()
	cp := CriticalPath{Total: steps[len(steps)-1].At, Steps: steps[:len(steps)-1]}
	cp.Real = time.Duration(float64(cp.Total) * s.speed)

	replay := model
	replay.services = map[string]time.Duration{}
	for k, v := range model.services {
		replay.services[k] = v
	}
	seg := func(from, to string, model time.Duration, into *time.Duration) {
		g := Segment{From: from, To: to, Model: model}
		a, okA := First(tl, from)
		b, okB := First(tl, to)
		if okA && okB {
			g.Observed, g.ObservedOK = b.Sub(a), true
			*into = g.Observed
		}
		cp.Segments = append(cp.Segments, g)
	}
	seg(TimelineOrdered, TimelineIPAssigned, model.assignIP, &replay.assignIP)
	seg(TimelineIPAssigned, TimelineDelivered, model.deliver, &replay.deliver)
	seg(TimelineDelivered, TimelineInstalling, model.startInstall, &replay.startInstall)
	seg(TimelineInstalling, TimelineInstalled, model.install, &replay.install)
	seg(TimelineInstalled, TimelineMaintenance, model.pivot, &replay.pivot)
	seg(TimelineTaken, TimelineApplied, model.linger, &replay.linger)
	seg(TimelineApplied, TimelineConfigured, model.reboot, &replay.reboot)
	seg(TimelineConfigured, TimelineEtcdReady, model.etcdReady, &replay.etcdReady)
	names := make([]string, 0, len(model.services))
	for name := range model.services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		from := TimelineConfigured
		if name == talos.ServiceEtcd {
			from = TimelineBootstrapped
		}
		d := replay.services[name]
		seg(from, TimelineHealthyPrefix+name, model.services[name], &d)
		replay.services[name] = d
	}
	seg(TimelineHealthyPrefix+talos.ServiceEtcd, TimelineKubeNodeRegistered, model.register, &replay.register)
	seg(TimelineKubeNodeRegistered, TimelineCNIRunning, model.cniPod, &replay.cniPod)
	seg(TimelineCNIRunning, TimelineNodeReady, model.cniReady, &replay.cniReady)
	seg(TimelineNodeReady, TimelineAgentPodRunning, model.agentPod, &replay.agentPod)
	seg(TimelineNodeReady, TimelineCoreDNSRunning, model.coreDNS, &replay.coreDNS)
	seg(TimelineAgentJoined, TimelineRegistered, model.heartbeat, &replay.heartbeat)
	replay.tries = agentTries(tl)
	cp.Segments = append(cp.Segments, joinSegment(tl, &replay.join))
	rs := replay.chain()
	cp.Replayed = rs[len(rs)-1].At
	cp.reactions(tl, replay)
	cp.Ordered, cp.End, cp.EndsOK = chainEnds(tl)
	return cp
}

// reactions measures the CLI-driven links on the timeline and what each
// cost the replayed chain: the chain is evaluated with every reaction as
// observed, then with them made instant one by one, from the first; each
// difference is that reaction's share (they add up to how much later the
// chain ends than the replayed one).
func (cp *CriticalPath) reactions(tl []TimelineEvent, replay links) {
	type reaction struct {
		from, to string
		set      func(*links, time.Duration)
	}
	all := []reaction{
		{TimelineMaintenance, TimelineTaken, func(l *links, d time.Duration) { l.apply = d }},
		{TimelineEtcdReady, TimelineBootstrapped, func(l *links, d time.Duration) { l.bootstrap = d }},
	}
	end := func(l links) time.Duration { s := l.chain(); return s[len(s)-1].At }
	with := replay
	observed := make([]time.Duration, len(all))
	fromAt := make([]time.Time, len(all))
	for i, r := range all {
		a, okA := First(tl, r.from)
		b, okB := First(tl, r.to)
		if okA && okB && b.After(a) {
			fromAt[i], observed[i] = a, b.Sub(a)
			r.set(&with, observed[i])
		}
	}
	prev := end(with)
	for i, r := range all {
		r.set(&with, 0)
		next := end(with)
		cp.Reactions = append(cp.Reactions, Reaction{From: r.from, To: r.to, FromAt: fromAt[i], Observed: observed[i], OnPath: prev - next})
		prev = next
	}
}

// agentTries are the first configured node's kube agent's tries, as
// offsets from its configured event.
func agentTries(tl []TimelineEvent) []time.Duration {
	var node string
	var configured time.Time
	var out []time.Duration
	for _, e := range tl {
		switch {
		case e.Name == TimelineConfigured && node == "":
			node, configured = e.Subject, e.At
		case e.Name == TimelineAgentTry && node != "" && e.Subject == node:
			out = append(out, e.At.Sub(configured))
		}
	}
	return out
}

// joinSegment measures the agent's last try before it joined to the join:
// the model takes the join as instant.
func joinSegment(tl []TimelineEvent, into *time.Duration) Segment {
	g := Segment{From: TimelineAgentTry, To: TimelineAgentJoined}
	var try time.Time
	for _, e := range tl {
		switch e.Name {
		case TimelineAgentTry:
			try = e.At
		case TimelineAgentJoined:
			if !try.IsZero() {
				g.Observed, g.ObservedOK = e.At.Sub(try), true
				*into = g.Observed
			}
			return g
		}
	}
	return g
}

// chainEnds reads off the timeline when the first server was ordered and
// when the last event the chain ends on happened: every node's services
// healthy, the kube agent registered, CoreDNS running.
func chainEnds(tl []TimelineEvent) (ordered, end time.Time, ok bool) {
	ordered, okO := First(tl, TimelineOrdered)
	seen := map[string]bool{}
	for _, e := range tl {
		switch e.Name {
		case TimelineServicesHealth, TimelineRegistered, TimelineCoreDNSRunning:
			seen[e.Name] = true
			end = later(end, e.At)
		}
	}
	return ordered, end, okO && len(seen) == 3
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// slowestPace is the largest pace a server drew (Profile.Jitter: every
// server scales all its Scaleway delays by one factor), read off the
// timeline as its span from ordered to install completed over the
// profile's: the slowest server holds the whole cluster up. 1 when no
// server got that far.
func slowestPace(tl []TimelineEvent, l links) float64 {
	ordered, pace := map[string]time.Time{}, 0.0
	want := l.assignIP + l.deliver + l.startInstall + l.install
	for _, e := range tl {
		switch e.Name {
		case TimelineOrdered:
			ordered[e.Subject] = e.At
		case TimelineInstalled:
			if at, ok := ordered[e.Subject]; ok && want > 0 {
				pace = max(pace, float64(e.At.Sub(at))/float64(want))
			}
		}
	}
	if pace == 0 {
		return 1
	}
	return pace
}

// paced is l with the Scaleway delays scaled by the pace a server drew.
func (l links) paced(pace float64) links {
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) * pace) }
	l.assignIP, l.deliver, l.startInstall, l.install = scale(l.assignIP), scale(l.deliver), scale(l.startInstall), scale(l.install)
	return l
}

// Requests are the request counts of every emulator, by service and
// operation. The Teleport "Join" count is the emulated agent's, not the CLI's.
func (s *Sandbox) Requests() map[string]map[string]int {
	out := map[string]map[string]int{
		"scaleway":   s.Scaleway.Counters().Snapshot(),
		"cloudflare": s.Cloudflare.Counters().Snapshot(),
		"infisical":  s.Infisical.Counters().Snapshot(),
		"teleport":   s.Teleport.Counters().Snapshot(),
		"ipdetect":   s.IP.Counters().Snapshot(),
	}
	talosOps := map[string]int{}
	s.mu.Lock()
	booted := append([]*emulator.Counters(nil), s.nodeCounters...)
	s.mu.Unlock()
	for _, c := range booted {
		for op, n := range c.Snapshot() {
			talosOps[op] += n
		}
	}
	out["talos"] = talosOps
	return out
}

// AgentOps are counter names that count the emulated agent's requests, not
// the CLI's.
var AgentOps = map[string]map[string]bool{"teleport": {teleport.OpJoin: true}}
