// Package kube reads a cluster's state through its Kubernetes API with
// client-go, for the verification before lockdown: every node Ready, the CNI
// and CoreDNS running, the FluxInstance Ready. It never writes: what the
// cluster runs comes from Talos's inline manifests.
package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rawkode/rawkode-cloud/internal/platform"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// Names Talos gives what it deploys itself.
const (
	SystemNamespace   = "kube-system"
	CoreDNSDeployment = "coredns"
	FlannelDaemonSet  = "kube-flannel"
)

// Option configures a Client.
type Option func(*rest.Config)

// WithDialer routes connections, e.g. through a sandbox's network.
func WithDialer(dial func(ctx context.Context, network, address string) (net.Conn, error)) Option {
	return func(c *rest.Config) { c.Dial = dial }
}

// WithServerHost connects to host instead of the kubeconfig's server host
// (same port), still verifying the certificate for that host.
func WithServerHost(host string) Option {
	return func(c *rest.Config) {
		u, err := url.Parse(c.Host)
		if err != nil || host == "" {
			return
		}

		port := u.Port()
		if port == "" {
			port = "443"
		}

		u.Host = net.JoinHostPort(host, port)
		c.Host = u.String()
	}
}

// WithTransportWrapper wraps the HTTP transport, e.g. to count requests.
func WithTransportWrapper(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(c *rest.Config) { c.WrapTransport = wrap }
}

// DefaultQPS and DefaultBurst are client-go's own client-side rate limit
// (rest.DefaultQPS, rest.DefaultBurst): a few requests per poll interval
// stay far below it on a real cluster.
const (
	DefaultQPS   = 5
	DefaultBurst = 10
)

// WithRateLimit sets the client-side rate limit (client-go's token bucket):
// the sandbox raises it with its clock, as its polls come that much faster
// while the bucket refills in real time.
func WithRateLimit(qps float32, burst int) Option {
	return func(c *rest.Config) { c.QPS, c.Burst = qps, burst }
}

// Client reads one cluster.
type Client struct {
	cs  kubernetes.Interface
	dyn dynamic.Interface
}

// New builds a client from an admin kubeconfig (kept in memory only).
func New(kubeconfig []byte, opts ...Option) (*Client, error) {
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, errors.New("read kubeconfig: not a valid kubeconfig")
	}

	cfg.Timeout = 15 * time.Second
	cfg.ContentType = "application/json"
	cfg.UserAgent = "rawkode-cloud"

	for _, o := range opts {
		o(cfg)
	}
	return NewForConfig(cfg)
}

// NewForConfig builds a client from a REST config someone else made (the
// inside route's, through Teleport).
func NewForConfig(cfg *rest.Config) (*Client, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}

	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}

	return &Client{cs: cs, dyn: dyn}, nil
}

// Expect says what a healthy cluster has.
type Expect struct {
	// Nodes is how many nodes must be registered (and Ready).
	Nodes int
	// NodeNames, when set, are the nodes that must be registered and
	// Ready, by name: a report then names the ones missing. With neither
	// Nodes nor NodeNames, nodes are not looked at.
	NodeNames []string
	// CNI, when set, must run, and CoreDNS with it.
	CNI platform.CNI
	// Flux: a FluxInstance must be Ready.
	Flux bool
	// LoadBalancerPool and L2Policy, when set, must exist: Talos creates
	// them only once Cilium's operator has registered their kinds, and
	// after the lockdown nobody could find out that they never did.
	LoadBalancerPool, L2Policy string
}

// Item is one verified thing.
type Item struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Report is the outcome of one check of every item.
type Report []Item

// OK says whether every item is.
func (r Report) OK() bool {
	return len(r) > 0 && !slices.ContainsFunc(r, func(i Item) bool { return !i.OK })
}

// Failing lists the items that are not OK.
func (r Report) Failing() []Item {
	var out []Item

	for _, i := range r {
		if !i.OK {
			out = append(out, i)
		}
	}

	return out
}

// Check looks at every item once. An error means the API could not be
// asked at all; an item that is not there yet is a failing item.
func (c *Client) Check(ctx context.Context, exp Expect) (Report, error) {
	var r Report

	if exp.Nodes > 0 || len(exp.NodeNames) > 0 {
		nodes, err := c.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}

		r = append(r, nodeItems(nodes.Items, exp.Nodes)...)
		if len(exp.NodeNames) > 0 {
			r = append(r, namedNodesItem(nodes.Items, exp.NodeNames))
		}
	}

	if exp.CNI == "" {
		return c.platformItems(ctx, exp, r)
	}

	cniName := FlannelDaemonSet
	if exp.CNI == platform.CNICilium {
		cniName = platform.CiliumDaemonSet
	}

	item, err := c.daemonSetItem(ctx, "CNI ("+string(exp.CNI)+")", SystemNamespace, cniName)
	if err != nil {
		return nil, err
	}

	r = append(r, item)

	if item, err = c.deploymentItem(ctx, "CoreDNS", SystemNamespace, CoreDNSDeployment); err != nil {
		return nil, err
	}

	r = append(r, item)

	return c.platformItems(ctx, exp, r)
}

// platformItems checks what the platform layer adds: the load balancer
// objects and Flux.
func (c *Client) platformItems(ctx context.Context, exp Expect, r Report) (Report, error) {
	var (
		item Item
		err  error
	)

	for _, want := range []struct {
		name string
		gvr  schema.GroupVersionResource
		kind string
	}{
		{exp.LoadBalancerPool, ciliumPools, platform.LoadBalancerIPPoolKind},
		{exp.L2Policy, ciliumL2Policies, platform.L2PolicyKind},
	} {
		if want.name == "" {
			continue
		}

		if item, err = c.existsItem(ctx, want.kind, want.gvr, want.name); err != nil {
			return nil, err
		}

		r = append(r, item)
	}

	if exp.Flux {
		if item, err = c.fluxItem(ctx); err != nil {
			return nil, err
		}

		r = append(r, item)
	}

	return r, nil
}

// namedNodesItem says which of the named nodes have not registered: a
// kubelet that never joined is a node the cluster silently lacks.
func namedNodesItem(nodes []corev1.Node, names []string) Item {
	registered := map[string]bool{}
	for _, n := range nodes {
		registered[n.Name] = true
	}

	var missing []string

	for _, name := range names {
		if !registered[name] {
			missing = append(missing, name)
		}
	}

	item := Item{Name: "nodes registered", OK: len(missing) == 0,
		Detail: fmt.Sprintf("%d of %d nodes have registered", len(names)-len(missing), len(names))}
	if len(missing) > 0 {
		item.Detail += "; missing " + strings.Join(missing, ", ")
	}

	return item
}

func nodeItems(nodes []corev1.Node, want int) []Item {
	var out []Item

	for _, n := range nodes {
		item := Item{Name: "node " + n.Name, Detail: "no Ready condition yet"}

		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				item.OK = c.Status == corev1.ConditionTrue
				item.Detail = fmt.Sprintf("Ready=%s (%s)", c.Status, c.Reason)

				if !item.OK && c.Message != "" {
					item.Detail += ": " + c.Message
				}
			}
		}

		out = append(out, item)
	}

	if len(nodes) < want {
		out = append(out, Item{Name: "nodes registered", Detail: fmt.Sprintf("%d of %d nodes have registered", len(nodes), want)})
	}

	return out
}

func (c *Client) daemonSetItem(ctx context.Context, label, ns, name string) (Item, error) {
	item := Item{Name: label}

	ds, err := c.cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		item.Detail = fmt.Sprintf("DaemonSet %s/%s does not exist (yet)", ns, name)
		return item, nil
	case err != nil:
		return item, fmt.Errorf("get DaemonSet %s/%s: %w", ns, name, err)
	}

	item.OK = dsReady(ds)
	item.Detail = fmt.Sprintf("DaemonSet %s/%s: %d of %d pods ready", ns, name, ds.Status.NumberReady, ds.Status.DesiredNumberScheduled)

	return item, nil
}

func dsReady(ds *appsv1.DaemonSet) bool {
	s := ds.Status
	return s.DesiredNumberScheduled > 0 && s.NumberReady == s.DesiredNumberScheduled && s.ObservedGeneration >= ds.Generation
}

func (c *Client) deploymentItem(ctx context.Context, label, ns, name string) (Item, error) {
	item := Item{Name: label}

	d, err := c.cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		item.Detail = fmt.Sprintf("Deployment %s/%s does not exist (yet)", ns, name)
		return item, nil
	case err != nil:
		return item, fmt.Errorf("get Deployment %s/%s: %w", ns, name, err)
	}

	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}

	item.OK = d.Status.AvailableReplicas >= want && want > 0
	item.Detail = fmt.Sprintf("Deployment %s/%s: %d of %d replicas available", ns, name, d.Status.AvailableReplicas, want)

	return item, nil
}

var (
	ciliumPools      = schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumloadbalancerippools"}
	ciliumL2Policies = schema.GroupVersionResource{Group: "cilium.io", Version: "v2alpha1", Resource: "ciliuml2announcementpolicies"}
)

// existsItem checks that a cluster-scoped custom resource exists (a 404 is
// also what the API says while its CRD is not registered).
func (c *Client) existsItem(ctx context.Context, kind string, gvr schema.GroupVersionResource, name string) (Item, error) {
	item := Item{Name: kind + " " + name}

	_, err := c.dyn.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		item.Detail = "not created yet (Talos creates it once Cilium's operator has registered its kind)"
		return item, nil
	case err != nil:
		return item, fmt.Errorf("get %s %s: %w", kind, name, err)
	}

	item.OK, item.Detail = true, "exists"

	return item, nil
}

var fluxInstances = schema.GroupVersionResource{Group: "fluxcd.controlplane.io", Version: "v1", Resource: "fluxinstances"}

func (c *Client) fluxItem(ctx context.Context) (Item, error) {
	item := Item{Name: "FluxInstance"}
	ns, name := platform.FluxNamespace, platform.FluxInstanceName

	u, err := c.dyn.Resource(fluxInstances).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		// Also what the API says while the Flux Operator's CRD is not
		// registered yet.
		item.Detail = fmt.Sprintf("FluxInstance %s/%s does not exist (yet)", ns, name)
		return item, nil
	case err != nil:
		return item, fmt.Errorf("get FluxInstance %s/%s: %w", ns, name, err)
	}

	item.Detail = fmt.Sprintf("FluxInstance %s/%s: not reconciled yet", ns, name)

	conds, _, _ := unstructuredSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] != "Ready" {
			continue
		}

		item.OK = m["status"] == "True"
		item.Detail = fmt.Sprintf("FluxInstance %s/%s: Ready=%v (%v) %v", ns, name, m["status"], m["reason"], m["message"])
	}

	return item, nil
}

func unstructuredSlice(obj map[string]any, path ...string) ([]any, bool, error) {
	var cur any = obj

	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false, nil
		}

		cur = m[p]
	}

	s, ok := cur.([]any)

	return s, ok, nil
}

// WaitReady checks every opts.Interval until every item is OK or ctx ends;
// it returns the last report either way (and ctx's error when it ended
// first). onReport, when set, sees every report, so progress can be shown;
// opts.OnCheck is told when each check begins. API errors are retried: the
// API server may still be starting.
func (c *Client) WaitReady(ctx context.Context, exp Expect, opts wait.Options, onReport func(Report)) (Report, error) {
	var (
		last    Report
		lastErr error
	)

	interval := opts.Interval
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()

	for {
		opts.Checking()
		r, err := c.Check(ctx, exp)
		if err == nil {
			last, lastErr = r, nil

			if onReport != nil {
				onReport(r)
			}

			if r.OK() {
				return r, nil
			}
		} else {
			lastErr = err
		}

		select {
		case <-ctx.Done():
			if last == nil && lastErr != nil {
				return nil, fmt.Errorf("%w (last error: %v)", ctx.Err(), lastErr)
			}

			return last, ctx.Err()
		case <-t.C:
		}
	}
}

// NodesReady reads every registered node's Ready condition; want is how
// many nodes must have registered. Day-two gates use it between steps.
func (c *Client) NodesReady(ctx context.Context, want int) (Report, error) {
	nodes, err := c.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}

	return nodeItems(nodes.Items, want), nil
}
