package ops

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/provision"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
	"github.com/rawkode/rawkode-cloud/internal/talos"
)

// State is how one part of a cluster is doing.
type State string

const (
	OK       State = "ok"
	Degraded State = "degraded"
	Down     State = "down"
	// Unknown is what cannot be observed from here without reopening the
	// cluster (the Talos API of a locked-down node); it does not make the
	// cluster unhealthy.
	Unknown State = "unknown"
)

// Check is one observation.
type Check struct {
	Component string `json:"component"`
	Subject   string `json:"subject,omitempty"`
	State     State  `json:"state"`
	Detail    string `json:"detail"`
}

// ServerInfo is one server of the cluster.
type ServerInfo struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	IP     string `json:"ip"`
	Role   string `json:"role"`
	// AccessUntil is the end of a recorded break-glass opening, if any.
	AccessUntil *time.Time `json:"access_until,omitempty"`
}

// Report is a cluster's status.
type Report struct {
	Cluster string       `json:"cluster"`
	State   State        `json:"state"`
	Servers []ServerInfo `json:"servers"`
	Checks  []Check      `json:"checks"`
}

// Healthy reports whether nothing is degraded or down.
func (r Report) Healthy() bool { return r.State == OK }

// Status observes a cluster from outside, without opening anything. What a
// locked-down cluster lets us see from here: its servers (Scaleway), its
// DNS record (Cloudflare), its registration with Teleport — the kube agent
// heartbeats from inside the cluster, so a registered agent means the API
// server and the pod network work — its API ports (closed, as they must
// be), and what the secret store holds. The Talos API of each node is read
// only where it answers us: on a cluster a run left open (exit 3), or
// while an opening recorded on its servers (access-until tag) lasts. Otherwise nodes are reported as
// unknown, not as unhealthy.
func Status(ctx context.Context, e *Env, cluster string, now time.Time) (Report, error) {
	rep := Report{Cluster: cluster, Servers: []ServerInfo{}}
	add := func(c Check) { rep.Checks = append(rep.Checks, c) }

	talosconfig, kubeconfig, secretsCheck, err := e.secretsCheck(ctx, cluster)
	if err != nil {
		return rep, err
	}
	servers, err := e.Servers.FindServers(ctx, scaleway.ClusterTags(cluster)...)
	if err != nil {
		return rep, fmt.Errorf("find servers of cluster %s: %w", cluster, err)
	}
	sort.Slice(servers, func(i, j int) bool { return servers[i].Name < servers[j].Name })
	ins := &statusRoute{e: e, cluster: cluster}
	if len(servers) == 0 {
		add(Check{Component: "servers", State: Down, Detail: "no server tagged " + strings.Join(scaleway.ClusterTags(cluster), ",")})
	}
	for _, srv := range servers {
		info := serverInfo(srv, now)
		rep.Servers = append(rep.Servers, info)
		add(serverCheck(srv))
		if srv.IPv4 == "" {
			continue
		}
		open, err := e.Talos.ProbePorts(ctx, srv.IPv4, []int{machineconfig.TalosAPIPort, machineconfig.KubernetesAPIPort})
		if err != nil {
			return rep, err
		}
		add(portsCheck(info, open))
		if open[machineconfig.TalosAPIPort] || talosconfig == "" {
			add(e.nodeCheck(ctx, e.Talos, srv.IPv4, talosconfig, open[machineconfig.TalosAPIPort], ViaDirect))
			continue
		}
		t, err := ins.talos(ctx, srv)
		if err != nil {
			c := Check{Component: "talos", Subject: srv.IPv4, State: Unknown,
				Detail: "not observed: the Talos API is closed from here (locked down) and the inside route through Teleport Kubernetes access failed: " + err.Error()}
			if e.Inside == nil {
				c.Detail = "not observed: the Talos API is closed from here (locked down) and the inside route needs Teleport; the Teleport registration is the in-cluster signal"
			}
			add(c)
			continue
		}
		add(e.nodeCheck(ctx, t, srv.IPv4, talosconfig, true, ViaInside))
	}
	kc := e.kubernetesCheck(ctx, servers, kubeconfig)
	if kc.State == Unknown && ins.r != nil {
		kc = ins.kubernetesCheck(ctx, servers)
	}
	if err := ins.close(ctx); err != nil {
		add(Check{Component: "talos-route", State: Degraded, Detail: err.Error()})
	}
	add(kc)
	add(accessCheck(cluster, servers, now))
	add(e.teleportCheck(ctx, cluster))
	add(e.dnsCheck(ctx, servers))
	add(secretsCheck)
	rep.State = overall(rep.Checks, len(servers))
	return rep, nil
}

// accessCheck reports the break-glass opening recorded on the servers.
func accessCheck(cluster string, servers []scaleway.Server, now time.Time) Check {
	c := Check{Component: "access", State: OK, Detail: "no break-glass opening recorded"}
	var until time.Time
	for _, srv := range servers {
		if u, ok := accessUntil(srv.Tags); ok && u.After(until) {
			until = u
		}
	}
	switch {
	case until.IsZero():
	case until.After(now):
		c.Detail = "break-glass opening recorded until " + until.UTC().Format(time.RFC3339) + " ('rawkode-cloud access close --cluster-name " + cluster + "' closes it early)"
	default:
		c.State = Degraded
		c.Detail = "a break-glass opening recorded until " + until.UTC().Format(time.RFC3339) + " was never closed (its process ended without closing it): 'rawkode-cloud access close --cluster-name " + cluster + "' closes it"
	}
	return c
}

func serverInfo(srv scaleway.Server, now time.Time) ServerInfo {
	info := ServerInfo{ID: srv.ID, Name: srv.Name, Status: srv.Status, IP: srv.IPv4, Role: roleOf(srv.Tags)}
	if until, ok := accessUntil(srv.Tags); ok && until.After(now) {
		info.AccessUntil = &until
	}
	return info
}

// roleOf reads the role tag; servers ordered before roles existed are the
// single control plane.
func roleOf(tags []string) string {
	for _, t := range tags {
		if r, ok := strings.CutPrefix(t, "role="); ok {
			return r
		}
	}
	return "controlplane"
}

func serverCheck(srv scaleway.Server) Check {
	c := Check{Component: "server", Subject: srv.Name, State: OK,
		Detail: fmt.Sprintf("%s %s, install %s, %s", srv.ID, srv.Status, srv.InstallStatus, orNone(srv.IPv4))}
	switch {
	case srv.Status == "ready" && srv.InstallStatus == "completed":
	case srv.Status == "error" || srv.InstallStatus == "error":
		c.State = Down
	default:
		c.State = Degraded
	}
	return c
}

func orNone(ip string) string {
	if ip == "" {
		return "no IP"
	}
	return ip
}

func portsCheck(info ServerInfo, open map[int]bool) Check {
	var opened []string
	for _, p := range []int{machineconfig.TalosAPIPort, machineconfig.KubernetesAPIPort} {
		if open[p] {
			opened = append(opened, fmt.Sprint(p))
		}
	}
	c := Check{Component: "ports", Subject: info.IP}
	switch {
	case len(opened) == 0:
		c.State, c.Detail = OK, "50000 and 6443 closed from here (locked down)"
	case info.AccessUntil != nil:
		c.State, c.Detail = OK, fmt.Sprintf("%s open to this machine until %s (break-glass opening)", strings.Join(opened, ", "), info.AccessUntil.UTC().Format(time.RFC3339))
	default:
		c.State, c.Detail = Degraded, fmt.Sprintf("%s open from here with no opening recorded: the lockdown did not finish, or an opening outlived its process ('access close' closes it)", strings.Join(opened, ", "))
	}
	return c
}

func (e *Env) nodeCheck(ctx context.Context, t Talos, ip, talosconfig string, reachable bool, via string) (c Check) {
	c = Check{Component: "talos", Subject: ip}
	switch {
	case !reachable:
		c.State, c.Detail = Unknown, "not observed: the Talos API is closed from here (locked down); the Teleport registration is the in-cluster signal"
		return c
	case talosconfig == "":
		c.State, c.Detail = Degraded, "the Talos API answers but no talosconfig is stored to talk to it"
		return c
	}
	route := "direct"
	if via == ViaInside {
		route = "inside: Teleport Kubernetes access → hostNetwork pod → apid on loopback"
	}
	info, err := t.Inspect(ctx, ip, []byte(talosconfig))
	if err != nil {
		c.State, c.Detail = Down, err.Error()+" (route: "+route+")"
		return c
	}
	defer func() { c.Detail += " (route: " + route + ")" }()
	var bad []string
	for _, s := range info.Services {
		if slices.Contains(talos.DefaultServices(), s.ID) && (s.State != "Running" || !s.Healthy) {
			bad = append(bad, s.ID+" "+strings.ToLower(s.State))
		}
	}
	etcd := "etcd members: " + strings.Join(info.EtcdMembers, ", ")
	if info.EtcdErr != nil {
		bad = append(bad, "etcd members unreadable")
		etcd = info.EtcdErr.Error()
	}
	c.State, c.Detail = OK, fmt.Sprintf("Talos %s, services healthy, %s", info.Version, etcd)
	if len(bad) > 0 {
		c.State, c.Detail = Degraded, fmt.Sprintf("Talos %s: %s; %s", info.Version, strings.Join(bad, ", "), etcd)
	}
	return c
}

func (e *Env) teleportCheck(ctx context.Context, cluster string) Check {
	c := Check{Component: "teleport"}
	if e.Teleport == nil {
		c.State, c.Detail = Unknown, "Teleport is not configured ("+config.TeleportProxy+")"
		return c
	}
	names, err := e.Teleport.KubeClusters(ctx)
	switch {
	case err != nil:
		c.State, c.Detail = Unknown, err.Error()
	case slices.Contains(names, cluster):
		c.State, c.Detail = OK, "kube agent registered: it heartbeats from inside the cluster, so the API server and pod network work; Kubernetes is reached through Teleport"
	default:
		c.State, c.Detail = Down, "no kube agent registered for "+cluster+": Kubernetes is unreachable through Teleport"
	}
	return c
}

func (e *Env) dnsCheck(ctx context.Context, servers []scaleway.Server) Check {
	c := Check{Component: "dns"}
	name := e.Cfg.Get(config.CloudflareDNSName)
	if e.DNS == nil || name == "" {
		c.State, c.Detail = Unknown, "Cloudflare is not configured"
		return c
	}
	c.Subject = name
	recs, err := e.DNS.FindA(ctx, name)
	if err != nil {
		c.State, c.Detail = Unknown, err.Error()
		return c
	}
	var ips, points []string
	for _, s := range servers {
		ips = append(ips, s.IPv4)
	}
	for _, r := range recs {
		points = append(points, r.Content)
	}
	switch {
	case len(recs) == 0:
		c.State, c.Detail = Down, "no A record"
	case len(servers) > 0 && slices.ContainsFunc(points, func(p string) bool { return slices.Contains(ips, p) }):
		c.State, c.Detail = OK, "A → "+strings.Join(points, ", ")
	default:
		c.State, c.Detail = Degraded, "A → "+strings.Join(points, ", ")+", which is none of the cluster's servers"
	}
	return c
}

func (e *Env) secretsCheck(ctx context.Context, cluster string) (string, string, Check, error) {
	c := Check{Component: "secrets", Subject: provision.SecretsPath(cluster)}
	if e.Store == nil {
		c.State, c.Detail = Unknown, "Infisical is not configured: the credentials are wherever --secrets-out put them"
		return "", "", c, nil
	}
	var have, missing []string
	var talosconfig, kubeconfig string
	for _, n := range []string{provision.SecretTalosBundle, provision.SecretTalosconfig, provision.SecretKubeconfig} {
		v, err := e.secret(ctx, cluster, n)
		if err != nil {
			return "", "", c, fmt.Errorf("read %s at %s: %w", n, provision.SecretsPath(cluster), err)
		}
		if v == "" {
			missing = append(missing, n)
			continue
		}
		have = append(have, n)
		switch n {
		case provision.SecretTalosconfig:
			talosconfig = v
		case provision.SecretKubeconfig:
			kubeconfig = v
		}
	}
	switch {
	case len(missing) == 0:
		c.State, c.Detail = OK, "stored: "+strings.Join(have, ", ")
	case len(have) == 0:
		c.State, c.Detail = Down, "nothing stored: the cluster cannot be managed or rebuilt"
	default:
		c.State, c.Detail = Degraded, "stored: "+strings.Join(have, ", ")+"; missing: "+strings.Join(missing, ", ")
	}
	return talosconfig, kubeconfig, c, nil
}

// kubernetesCheck reads the nodes' Ready condition where a control plane's
// Kubernetes API answers this machine (a cluster a run left open, or during
// an opening); a locked-down cluster's is reached only through Teleport,
// and its Teleport registration stands in for it.
func (e *Env) kubernetesCheck(ctx context.Context, servers []scaleway.Server, kubeconfig string) Check {
	c := Check{Component: "kubernetes", State: Unknown, Detail: "not observed: 6443 is closed from here (locked down); Kubernetes is reached through Teleport"}
	var nodes []node
	for _, s := range servers {
		if s.IPv4 != "" && s.Status != "deleting" {
			nodes = append(nodes, node{Server: s, role: roleOf(s.Tags)})
		}
	}
	if len(nodes) == 0 || kubeconfig == "" || !e.kubeReachable(ctx, nodes, []byte(kubeconfig)) {
		return c
	}
	if err := e.kubeGate(ctx, nodes, []byte(kubeconfig)); err != nil {
		c.State, c.Detail = Degraded, err.Error()
		return c
	}
	c.State, c.Detail = OK, fmt.Sprintf("%d node(s) registered and Ready", len(nodes))
	return c
}

// overall is down without a server, degraded when anything is not ok.
func overall(checks []Check, servers int) State {
	if servers == 0 {
		return Down
	}
	for _, c := range checks {
		if c.State == Degraded || c.State == Down {
			return Degraded
		}
	}
	return OK
}

// statusRoute opens the inside route the first time status needs it.
type statusRoute struct {
	e       *Env
	cluster string
	r       Route
	err     error
	t       Talos
}

func (s *statusRoute) talos(ctx context.Context, srv scaleway.Server) (Talos, error) {
	if s.e.Inside == nil || s.e.TalosVia == nil {
		return nil, ErrLockedDown
	}
	if s.r == nil && s.err == nil {
		s.r, s.err = s.e.Inside(ctx, s.cluster)
		if s.err == nil {
			s.t = s.e.TalosVia(s.r.Dial)
		}
	}
	if s.err != nil {
		return nil, s.err
	}
	s.r.AddNode(srv.IPv4, srv.Name)
	return s.t, nil
}

func (s *statusRoute) close(ctx context.Context) error {
	if s.r == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), routeCloseBudget)
	defer cancel()
	return s.r.Close(cctx)
}

// kubernetesCheck reads the nodes' readiness through Teleport.
func (s *statusRoute) kubernetesCheck(ctx context.Context, servers []scaleway.Server) Check {
	c := Check{Component: "kubernetes"}
	want := 0
	for _, srv := range servers {
		if srv.IPv4 != "" && srv.Status != "deleting" {
			want++
		}
	}
	cl, err := s.r.Kube(ctx)
	if err == nil {
		err = nodesReadyGate(ctx, cl, want, "through Teleport")
	}
	if err != nil {
		c.State, c.Detail = Degraded, err.Error()
		return c
	}
	c.State, c.Detail = OK, fmt.Sprintf("%d node(s) registered and Ready (read through Teleport)", want)
	return c
}
