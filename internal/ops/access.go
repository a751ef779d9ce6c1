package ops

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/provision"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
)

// accessTagPrefix marks a server with a break-glass opening and when it
// ends (Unix seconds). The tag lives on the server, where status and a
// later 'access close' find it without local state, and it goes with the
// server.
const accessTagPrefix = "access-until="

func accessUntil(tags []string) (time.Time, bool) {
	for _, t := range tags {
		if v, ok := strings.CutPrefix(t, accessTagPrefix); ok {
			sec, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.Unix(sec, 0), true
		}
	}
	return time.Time{}, false
}

// withAccessTag is tags with the opening's tag set to until (or removed
// when until is zero).
func withAccessTag(tags []string, until time.Time) []string {
	out := slices.DeleteFunc(slices.Clone(tags), func(t string) bool { return strings.HasPrefix(t, accessTagPrefix) })
	if !until.IsZero() {
		out = append(out, accessTagPrefix+strconv.FormatInt(until.Unix(), 10))
	}
	return out
}

// ErrLockedDown is what a Talos-needing day-two command meets on a
// locked-down cluster when the inside route is not available either: the
// nodes' firewall admits the Talos API only from the other nodes (and
// loopback), so nothing outside can reach it — not even to open it, since
// the firewall is machine config and machine config changes only through
// that very API.
var ErrLockedDown = errors.New("the cluster is locked down: its Talos API answers only from inside the cluster. " +
	"Day-two commands reach it through Teleport Kubernetes access (a short-lived hostNetwork pod on the node, port-forwarded to apid on loopback); " +
	"without that route they work only while the Talos API answers this machine (a cluster a run left open with exit 3 or --keep-on-failure, or an opening that is still in force)")

// lockedDown explains a refused Talos API instead of a bare "connection
// refused".
func lockedDown(ip string, err error) error {
	if isRefused(err) {
		return fmt.Errorf("the Talos API of %s is closed from here: %w (%w)", ip, ErrLockedDown, err)
	}
	return err
}

func isRefused(err error) bool {
	return err != nil && (errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused"))
}

// node is one server of a cluster with the role the tool gave it.
type node struct {
	scaleway.Server
	role string
}

func (n node) controlPlane() bool { return n.role == "controlplane" }

// clusterNodes finds the cluster's servers with an IP, control planes
// first, each group by name, and the talosconfig to reach them.
func (e *Env) clusterNodes(ctx context.Context, cluster string) ([]node, []byte, error) {
	servers, err := e.Servers.FindServers(ctx, scaleway.ClusterTags(cluster)...)
	if err != nil {
		return nil, nil, fmt.Errorf("find servers of cluster %s: %w", cluster, err)
	}
	var nodes []node
	for _, s := range servers {
		if s.IPv4 != "" && s.Status != "deleting" {
			nodes = append(nodes, node{Server: s, role: roleOf(s.Tags)})
		}
	}
	if len(nodes) == 0 {
		return nil, nil, fmt.Errorf("cluster %s has no server with an address ('rawkode-cloud status --cluster-name %s' shows what is there)", cluster, cluster)
	}
	sort.Slice(nodes, func(i, j int) bool {
		if nodes[i].controlPlane() != nodes[j].controlPlane() {
			return nodes[i].controlPlane()
		}
		return nodes[i].Name < nodes[j].Name
	})
	tc, err := e.secret(ctx, cluster, provision.SecretTalosconfig)
	if err != nil {
		return nil, nil, err
	}
	if tc == "" {
		return nil, nil, fmt.Errorf("no talosconfig stored at %s: the cluster's Talos API cannot be used", provision.SecretsPath(cluster))
	}
	return nodes, []byte(tc), nil
}

// reachable checks that every node's Talos API answers this machine.
func (e *Env) reachable(ctx context.Context, nodes []node) error {
	var closed []string
	for _, n := range nodes {
		open, err := e.Talos.ProbePorts(ctx, n.IPv4, []int{machineconfig.TalosAPIPort})
		if err != nil {
			return err
		}
		if !open[machineconfig.TalosAPIPort] {
			closed = append(closed, n.Name+" ("+n.IPv4+")")
		}
	}
	if len(closed) > 0 {
		return fmt.Errorf("the Talos API of %s is closed from here: %w", strings.Join(closed, ", "), ErrLockedDown)
	}
	return nil
}

// tagger sets a server's tags; the Scaleway client does.
type tagger interface {
	SetTags(ctx context.Context, id string, tags []string) error
}

func (e *Env) setAccessTag(ctx context.Context, n node, until time.Time) error {
	t, ok := e.Servers.(tagger)
	if !ok {
		return errors.New("the Scaleway client cannot set server tags")
	}
	return t.SetTags(ctx, n.ID, withAccessTag(n.Tags, until))
}

// Opening is a break-glass opening of a cluster's APIs.
type Opening struct {
	Cluster  string    `json:"cluster"`
	Operator string    `json:"operator"`
	Until    time.Time `json:"until"`
	Nodes    []string  `json:"nodes"`
	// Route is how the opening was applied: ViaDirect or, on a locked-down
	// cluster, ViaInside (through Teleport Kubernetes access).
	Route string `json:"route,omitempty"`
}

// accessPorts are the ports an opening admits the operator to on a node.
func accessPorts(n node) []int {
	if n.controlPlane() {
		return []int{machineconfig.TalosAPIPort, machineconfig.KubernetesAPIPort}
	}
	return []int{machineconfig.TalosAPIPort}
}

// OpenAccess opens the Talos API (and the Kubernetes API on control
// planes) of every node to operator/32 only, until until. The opening is
// recorded on the servers (access-until tag) before any node is changed,
// so that whatever happens next, status sees it and 'access close' finds
// it. Each node's own running config is changed (read back over the Talos
// API), never a regenerated one, so nothing else about the node moves.
// Every port must answer afterwards. On error the caller closes what may
// have been opened (CloseAccess).
func OpenAccess(ctx context.Context, e *Env, cluster string, operator netip.Addr, until time.Time) (op Opening, err error) {
	op = Opening{Cluster: cluster, Operator: operator.String() + "/32", Until: until}
	nodes, tc, err := e.clusterNodes(ctx, cluster)
	if err != nil {
		return op, err
	}
	via, closeRoute, err := e.reach(ctx, cluster, nodes)
	if err != nil {
		return op, err
	}
	op.Route = via
	defer func() {
		if cerr := closeRoute(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	for _, n := range nodes {
		if err := e.setAccessTag(ctx, n, until); err != nil {
			return op, fmt.Errorf("record the opening on %s: %w", n.Name, err)
		}
	}
	for _, n := range nodes {
		cfg, err := e.Talos.ReadConfig(ctx, n.IPv4, tc)
		if err != nil {
			return op, lockedDown(n.IPv4, err)
		}
		opened, err := machineconfig.WithOperatorRules(cfg, operator)
		if err != nil {
			return op, err
		}
		if _, err := e.Talos.ApplySecure(ctx, n.IPv4, tc, opened); err != nil {
			return op, fmt.Errorf("open %s: %w", n.Name, err)
		}
		open, err := e.Talos.ProbePorts(ctx, n.IPv4, accessPorts(n))
		if err != nil {
			return op, err
		}
		for _, p := range accessPorts(n) {
			if !open[p] {
				return op, fmt.Errorf("open %s: port %d still does not answer from here after the opening was applied", n.Name, p)
			}
		}
		op.Nodes = append(op.Nodes, n.Name)
	}
	return op, nil
}

// Closing is what CloseAccess did.
type Closing struct {
	Cluster string `json:"cluster"`
	// Closed are the nodes whose operator rules were removed now;
	// AlreadyClosed the ones that did not answer from here any more.
	Closed        []string `json:"closed"`
	AlreadyClosed []string `json:"already_closed"`
}

// CloseAccess removes the operator rules from every node that still
// answers this machine, proves from here that 50000 and 6443 no longer
// answer (as provisioning's lockdown does), and only then removes the
// recorded opening. It closes whatever is open to this machine: an opening
// of 'access open', one a crashed process left behind, or the operator
// rules a provisioning run left in place when it stopped with exit 3.
func CloseAccess(ctx context.Context, e *Env, cluster string) (Closing, error) {
	cl := Closing{Cluster: cluster, Closed: []string{}, AlreadyClosed: []string{}}
	nodes, tc, err := e.clusterNodes(ctx, cluster)
	if err != nil {
		return cl, err
	}
	ports := []int{machineconfig.TalosAPIPort, machineconfig.KubernetesAPIPort}
	var errs []error
	for _, n := range nodes {
		open, err := e.Talos.ProbePorts(ctx, n.IPv4, ports)
		if err != nil {
			return cl, err
		}
		if !open[machineconfig.TalosAPIPort] {
			if open[machineconfig.KubernetesAPIPort] {
				errs = append(errs, fmt.Errorf("%s: 6443 answers from here but the Talos API does not, so its rules cannot be changed from here", n.Name))
				continue
			}
			cl.AlreadyClosed = append(cl.AlreadyClosed, n.Name)
			continue
		}
		if err := e.closeNode(ctx, n, tc); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.Name, err))
			continue
		}
		cl.Closed = append(cl.Closed, n.Name)
	}
	if err := errors.Join(errs...); err != nil {
		return cl, fmt.Errorf("close the opening of %s (it stays recorded on its servers; run 'rawkode-cloud access close --cluster-name %s' again): %w", cluster, cluster, err)
	}
	for _, n := range nodes {
		if _, ok := accessUntil(n.Tags); !ok {
			continue
		}
		if err := e.setAccessTag(ctx, n, time.Time{}); err != nil {
			return cl, fmt.Errorf("closed, but the opening is still recorded on %s: %w", n.Name, err)
		}
	}
	return cl, nil
}

func (e *Env) closeNode(ctx context.Context, n node, tc []byte) error {
	cfg, err := e.Talos.ReadConfig(ctx, n.IPv4, tc)
	if err != nil {
		return err
	}
	closed, err := machineconfig.WithoutOperatorRules(cfg)
	if err != nil {
		return err
	}
	applied, err := e.Talos.ApplySecure(ctx, n.IPv4, tc, closed)
	if err != nil {
		return err
	}
	if !applied {
		return errors.New("the node did not confirm the config without the operator rules")
	}
	ports := []int{machineconfig.TalosAPIPort, machineconfig.KubernetesAPIPort}
	open, err := e.Talos.ProbePorts(ctx, n.IPv4, ports)
	if err != nil {
		return fmt.Errorf("verify the closing: %w", err)
	}
	var still []string
	for _, p := range ports {
		if open[p] {
			still = append(still, strconv.Itoa(p))
		}
	}
	if len(still) > 0 {
		return fmt.Errorf("closing did not take: TCP %s still answers from here", strings.Join(still, ", "))
	}
	return nil
}
