package ops

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/provision"
	"github.com/rawkode/rawkode-cloud/internal/talos"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// UpgradeOptions say what to upgrade to and how long to wait.
type UpgradeOptions struct {
	// TalosVersion and KubernetesVersion are targets; either may be empty.
	TalosVersion      string
	KubernetesVersion string
	DryRun            bool
	// StepTimeout bounds one node's upgrade, health gate after it included.
	StepTimeout time.Duration
	Wait        wait.Options
	// Progress is told what happens, one line at a time.
	Progress func(string)
}

// UpgradeStep is one node's change.
type UpgradeStep struct {
	Node      string `json:"node"`
	IP        string `json:"ip"`
	Role      string `json:"role"`
	Component string `json:"component"` // talos or kubernetes
	From      string `json:"from"`
	To        string `json:"to"`
	State     string `json:"state"` // planned, skipped, done, stopped
}

// UpgradeResult is the plan (dry run) or what was done.
type UpgradeResult struct {
	Cluster string        `json:"cluster"`
	DryRun  bool          `json:"dry_run"`
	Steps   []UpgradeStep `json:"steps"`
	// Note says what the plan could not see.
	Note string `json:"note,omitempty"`
	// Route is how the Talos API was reached: ViaDirect or ViaInside.
	Route string `json:"route,omitempty"`
}

// StoppedError says where an upgrade stopped and how to continue.
type StoppedError struct {
	Cluster string
	Node    string
	// Gate is "before <node>", "upgrading <node>" or "after <node>".
	Gate    string
	Done    int
	Total   int
	Command string
	Err     error
}

func (s *StoppedError) Error() string {
	return fmt.Sprintf("upgrade of %s stopped %s: %v. %d of %d steps done; nodes already at the target are skipped, so once the cause is fixed the same command continues from here: %s",
		s.Cluster, s.Gate, s.Err, s.Done, s.Total, s.Command)
}

func (s *StoppedError) Unwrap() error { return s.Err }

var (
	talosVersionRE = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`)
	kubeVersionRE  = regexp.MustCompile(`^v?\d+\.\d+\.\d+$`)
)

// CheckUpgradeVersions validates the targets before anything is asked of
// the cluster; it returns the Kubernetes version with its "v".
func CheckUpgradeVersions(talosV, kubeV string) (string, error) {
	if talosV == "" && kubeV == "" {
		return "", fail.UsageError(errors.New("say what to upgrade to: --talos-version vX.Y.Z and/or --kubernetes-version X.Y.Z"))
	}
	if talosV != "" && !talosVersionRE.MatchString(talosV) {
		return "", fail.UsageError(fmt.Errorf("--talos-version %q: want a Talos release such as v1.12.5", talosV))
	}
	if kubeV != "" && !kubeVersionRE.MatchString(kubeV) {
		return "", fail.UsageError(fmt.Errorf("--kubernetes-version %q: want a Kubernetes release such as 1.35.1", kubeV))
	}
	if kubeV != "" && !strings.HasPrefix(kubeV, "v") {
		kubeV = "v" + kubeV
	}
	return kubeV, nil
}

// nodeState is what a node runs now.
type nodeState struct {
	talos, kube, image string
}

// Upgrade upgrades Talos and then Kubernetes one node at a time, control
// planes first. The whole cluster must pass the health gate before the
// first step and again after every step (every node's services Running and
// healthy, every control plane's etcd healthy and listing every control
// plane as a member); the first gate that fails stops the run, with the
// node and how to continue. A node already at the target is skipped, which
// is what makes running the same command again continue where it stopped.
//
// Talos: the node's own install image (machine.install.image, so its Image
// Factory schematic and extensions stay) with the new tag, through Talos's
// Upgrade API; the node reboots and must come back with the new version.
// Kubernetes: the node's running config with the kubelet, API server,
// controller manager, scheduler and kube-proxy images moved to the new tag,
// re-applied without a reboot — what talosctl upgrade-k8s changes in the
// machine config (it also rolls the static pods' and kube-proxy's
// manifests, and checks deprecated APIs, which this does not).
//
// Where the Talos API does not answer this machine (a locked-down
// cluster) it goes through the inside route (Teleport Kubernetes access →
// a hostNetwork pod per node → apid on loopback; a node's pod goes down
// with its reboot and a new one is made when the node is back); the
// route's pods are deleted at the end, also on failure. Without Teleport
// it returns ErrLockedDown before changing anything. It opens nothing.
func Upgrade(ctx context.Context, e *Env, cluster string, o UpgradeOptions) (res UpgradeResult, err error) {
	res = UpgradeResult{Cluster: cluster, DryRun: o.DryRun, Steps: []UpgradeStep{}}
	say := o.Progress
	if say == nil {
		say = func(string) {}
	}
	kubeV, err := CheckUpgradeVersions(o.TalosVersion, o.KubernetesVersion)
	if err != nil {
		return res, err
	}
	nodes, tc, err := e.clusterNodes(ctx, cluster)
	if err != nil {
		return res, err
	}
	states := map[string]nodeState{}
	via, closeRoute, rerr := e.reach(ctx, cluster, nodes)
	defer func() {
		if derr := closeRoute(); derr != nil && err == nil {
			err = derr
		}
	}()
	res.Route = via
	if rerr != nil {
		if !o.DryRun {
			return res, rerr
		}
		res.Note = "current versions unknown: " + rerr.Error()
	} else {
		say("Talos API reached " + e.RouteDescription())
		for _, n := range nodes {
			st, err := e.nodeState(ctx, n, tc)
			if err != nil {
				return res, err
			}
			states[n.Name] = st
		}
	}
	add := func(n node, component, from, to string) {
		state := "planned"
		if from == to {
			state = "skipped"
		}
		res.Steps = append(res.Steps, UpgradeStep{Node: n.Name, IP: n.IPv4, Role: n.role, Component: component, From: orUnknown(from), To: to, State: state})
	}
	for _, n := range nodes {
		if o.TalosVersion != "" {
			add(n, "talos", states[n.Name].talos, o.TalosVersion)
		}
	}
	for _, n := range nodes {
		if kubeV != "" {
			add(n, "kubernetes", states[n.Name].kube, kubeV)
		}
	}
	if o.DryRun {
		return res, nil
	}

	kcs, err := e.secret(ctx, cluster, provision.SecretKubeconfig)
	if err != nil {
		return res, err
	}
	kc := []byte(kcs)
	if e.kubeDirect(ctx, nodes, kc) {
		say("the Kubernetes API answers from here: every node registered and Ready is part of the health gate")
	} else if e.route != nil {
		say("the Kubernetes API is reached through Teleport: every node registered and Ready is part of the health gate")
	} else {
		say("the Kubernetes API does not answer from here (it is reached through Teleport): node readiness is not part of the health gate")
	}
	command := "rawkode-cloud upgrade --cluster-name " + cluster
	if o.TalosVersion != "" {
		command += " --talos-version " + o.TalosVersion
	}
	if kubeV != "" {
		command += " --kubernetes-version " + kubeV
	}
	done := 0
	stop := func(n node, gate string, err error) error {
		return &StoppedError{Cluster: cluster, Node: n.Name, Gate: gate + " " + n.Name, Done: done, Total: len(res.Steps), Command: command, Err: err}
	}
	for i := range res.Steps {
		st := &res.Steps[i]
		n := nodeByName(nodes, st.Node)
		if st.State == "skipped" {
			say(fmt.Sprintf("%s: %s already at %s, skipped", n.Name, st.Component, st.To))
			done++
			continue
		}
		if err := e.healthGate(ctx, nodes, tc, kc); err != nil {
			st.State = "stopped"
			return res, stop(n, "before", err)
		}
		say(fmt.Sprintf("%s: cluster healthy; upgrading %s %s → %s", n.Name, st.Component, st.From, st.To))
		sctx, cancel := context.WithTimeout(ctx, o.StepTimeout)
		err := e.upgradeStep(sctx, n, tc, *st, states[n.Name], o.Wait)
		if err == nil {
			err = e.waitHealthy(sctx, nodes, tc, kc, o.Wait)
			if err != nil {
				cancel()
				st.State = "stopped"
				return res, stop(n, "after", err)
			}
		}
		cancel()
		if err != nil {
			st.State = "stopped"
			return res, stop(n, "upgrading", err)
		}
		st.State = "done"
		done++
		say(fmt.Sprintf("%s: %s %s, cluster healthy", n.Name, st.Component, st.To))
	}
	return res, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func nodeByName(nodes []node, name string) node {
	for _, n := range nodes {
		if n.Name == name {
			return n
		}
	}
	return node{}
}

func (e *Env) nodeState(ctx context.Context, n node, tc []byte) (nodeState, error) {
	info, err := e.Talos.Inspect(ctx, n.IPv4, tc)
	if err != nil {
		return nodeState{}, fmt.Errorf("%s: %w", n.Name, lockedDown(n.IPv4, err))
	}
	cfg, err := e.Talos.ReadConfig(ctx, n.IPv4, tc)
	if err != nil {
		return nodeState{}, fmt.Errorf("%s: %w", n.Name, lockedDown(n.IPv4, err))
	}
	img, err := machineconfig.InstallImage(cfg)
	if err != nil {
		return nodeState{}, fmt.Errorf("%s: %w", n.Name, err)
	}
	return nodeState{talos: info.Version, kube: machineconfig.KubeletVersion(cfg), image: img}, nil
}

// wantServices are the services a node of the role must have healthy.
func wantServices(n node) []string {
	if n.controlPlane() {
		return talos.DefaultServices()
	}
	return []string{talos.ServiceAPID, talos.ServiceKubelet}
}

func (e *Env) upgradeStep(ctx context.Context, n node, tc []byte, st UpgradeStep, cur nodeState, opts wait.Options) error {
	switch st.Component {
	case "talos":
		image, err := machineconfig.WithTag(cur.image, st.To)
		if err != nil {
			return err
		}
		if err := e.Talos.Upgrade(ctx, n.IPv4, tc, image); err != nil {
			return err
		}
		return e.Talos.WaitUpgraded(ctx, n.IPv4, tc, st.To, wantServices(n), opts)
	default:
		cfg, err := e.Talos.ReadConfig(ctx, n.IPv4, tc)
		if err != nil {
			return err
		}
		moved, err := machineconfig.WithKubernetesVersion(cfg, st.To)
		if err != nil {
			return err
		}
		if _, err := e.Talos.ApplySecure(ctx, n.IPv4, tc, moved); err != nil {
			return err
		}
		info, err := e.Talos.Inspect(ctx, n.IPv4, tc)
		if err != nil {
			return err
		}
		return e.Talos.WaitUpgraded(ctx, n.IPv4, tc, info.Version, wantServices(n), opts)
	}
}

// healthGate checks the whole cluster once: every node's services Running
// and healthy, every control plane's etcd listing every control plane (a
// member that is down shows as its etcd service unhealthy on its node),
// and — where the Kubernetes API answers this machine — every node
// registered and Ready.
func (e *Env) healthGate(ctx context.Context, nodes []node, tc []byte, kc []byte) error {
	if err := e.talosGate(ctx, nodes, tc); err != nil {
		return err
	}
	return e.kubeGate(ctx, nodes, kc)
}

// kubeGate reads the nodes' Ready condition through the first control
// plane whose 6443 answers; with none (a locked-down API, reached only
// through Teleport) or no stored kubeconfig it checks nothing.
func (e *Env) kubeGate(ctx context.Context, nodes []node, kc []byte) error {
	if e.route != nil && !e.kubeDirect(ctx, nodes, kc) {
		cl, err := e.route.Kube(ctx)
		if err != nil {
			return fmt.Errorf("Kubernetes API through Teleport: %w", err)
		}
		return nodesReadyGate(ctx, cl, len(nodes), "through Teleport")
	}
	if len(kc) == 0 || e.Kube == nil {
		return nil
	}
	for _, n := range nodes {
		if !n.controlPlane() {
			continue
		}
		open, err := e.Talos.ProbePorts(ctx, n.IPv4, []int{machineconfig.KubernetesAPIPort})
		if err != nil {
			return err
		}
		if !open[machineconfig.KubernetesAPIPort] {
			continue
		}
		cl, err := e.Kube(kc, n.IPv4)
		if err != nil {
			return fmt.Errorf("Kubernetes API: %w", err)
		}
		return nodesReadyGate(ctx, cl, len(nodes), "through "+n.Name)
	}
	return nil
}

// nodesReadyGate fails unless want nodes are registered and Ready.
func nodesReadyGate(ctx context.Context, cl KubeNodes, want int, via string) error {
	rep, err := cl.NodesReady(ctx, want)
	if err != nil {
		return fmt.Errorf("Kubernetes API %s: %w", via, err)
	}
	if bad := rep.Failing(); len(bad) > 0 {
		var s []string
		for _, b := range bad {
			s = append(s, b.Name+": "+b.Detail)
		}
		return fmt.Errorf("Kubernetes: %s", strings.Join(s, "; "))
	}
	return nil
}

// kubeReachable says whether node readiness can be read: directly, or
// through Teleport while the inside route is in use.
func (e *Env) kubeReachable(ctx context.Context, nodes []node, kc []byte) bool {
	return e.route != nil || e.kubeDirect(ctx, nodes, kc)
}

// kubeDirect says whether a control plane's 6443 answers this machine.
func (e *Env) kubeDirect(ctx context.Context, nodes []node, kc []byte) bool {
	if len(kc) == 0 || e.Kube == nil {
		return false
	}
	for _, n := range nodes {
		if !n.controlPlane() {
			continue
		}
		if open, err := e.Talos.ProbePorts(ctx, n.IPv4, []int{machineconfig.KubernetesAPIPort}); err == nil && open[machineconfig.KubernetesAPIPort] {
			return true
		}
	}
	return false
}

func (e *Env) talosGate(ctx context.Context, nodes []node, tc []byte) error {
	cps := 0
	for _, n := range nodes {
		if n.controlPlane() {
			cps++
		}
	}
	for _, n := range nodes {
		info, err := e.Talos.Inspect(ctx, n.IPv4, tc)
		if err != nil {
			return fmt.Errorf("%s: %w", n.Name, lockedDown(n.IPv4, err))
		}
		if bad := talos.UnhealthyServices(info, wantServices(n)); len(bad) > 0 {
			return fmt.Errorf("%s: services not healthy: %s", n.Name, strings.Join(bad, ", "))
		}
		if !n.controlPlane() {
			continue
		}
		if info.EtcdErr != nil {
			return fmt.Errorf("%s: etcd: %w", n.Name, info.EtcdErr)
		}
		if len(info.EtcdMembers) != cps {
			return fmt.Errorf("%s: etcd lists %d members (%s), want %d control planes", n.Name, len(info.EtcdMembers), strings.Join(info.EtcdMembers, ", "), cps)
		}
	}
	return nil
}

// waitHealthy waits until the health gate passes (a rebooted member takes
// a moment to be seen by the others).
func (e *Env) waitHealthy(ctx context.Context, nodes []node, tc, kc []byte, opts wait.Options) error {
	var last error
	err := wait.Until(ctx, "cluster health", opts, func(ctx context.Context) (bool, string, error) {
		last = e.healthGate(ctx, nodes, tc, kc)
		if last != nil {
			return false, last.Error(), nil
		}
		return true, "healthy", nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("%w (last: %v)", err, last)
	}
	return err
}
