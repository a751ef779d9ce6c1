// Package inside reaches a locked-down node's Talos API from inside the
// cluster, keeping the lockdown: with a short-lived Teleport Kubernetes
// certificate it asks the cluster's Kubernetes API (through Teleport's
// proxy) to run a short-lived pod on the node with hostNetwork, and
// port-forwards to the pod's port 50000 — the node's own apid on loopback,
// which Talos's ingress firewall always admits. The Talos client then
// speaks its normal mTLS through the forward: nothing is opened to the
// internet, and nothing Teleport does not audit is involved.
//
// The pod runs only the pause image (it listens on nothing; the forward
// reaches the node's network namespace), lives in kube-system (which
// Talos's default Pod Security admission exempts, so hostNetwork is
// allowed) and is deleted when the Route is closed; activeDeadlineSeconds
// ends it within the hour even if this process dies first.
package inside

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/rawkode/rawkode-cloud/internal/kube"
	"github.com/rawkode/rawkode-cloud/internal/teleport"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// Defaults of the pod the route runs.
const (
	Namespace = "kube-system"
	// PauseImage does nothing; the pod exists only for its network namespace.
	PauseImage = "registry.k8s.io/pause:3.10"
	// PodDeadline ends a pod a crashed process left behind.
	PodDeadline = time.Hour
	apidPort    = 50000
	podLabel    = "app.kubernetes.io/name"
	podLabelVal = "rawkode-cloud-apid-route"
)

// ErrNoSuchNode is returned for an address the route was not told about.
var ErrNoSuchNode = errors.New("not a node of this route")

// Credentials issues (or renews) the Teleport Kubernetes credentials.
type Credentials func(ctx context.Context) (teleport.KubeCredentials, error)

// Options tune a Route.
type Options struct {
	// Credentials is asked again when the certificate has less than Renew left.
	Credentials Credentials
	// Renew is the certificate lifetime left below which it is renewed (default 5m).
	Renew time.Duration
	// Wait is how pods are waited for (the interval; the caller's context bounds it).
	Wait wait.Options
	// PodStartTimeout bounds waiting for a pod to run within one dial (default 2m).
	PodStartTimeout time.Duration
	// OnEvent is told what the route does (pod created, forward started, pod deleted).
	OnEvent func(msg string)
}

// Route reaches nodes' Talos APIs through their own pods.
type Route struct {
	opts Options

	mu    sync.Mutex
	creds teleport.KubeCredentials
	cs    *kubernetes.Clientset
	rest  *rest.Config
	nodes map[string]string // IP → Kubernetes node name
	fwds  map[string]*forward
	locks map[string]*sync.Mutex
	pods  map[string]string // pod name → node, every pod created and not yet deleted
}

type forward struct {
	pod   string
	local string
	stop  chan struct{}
	done  chan struct{}
	err   error
}

func (f *forward) alive() bool {
	select {
	case <-f.done:
		return false
	default:
		return true
	}
}

// New connects to the cluster's API with fresh credentials.
func New(ctx context.Context, opts Options) (*Route, error) {
	if opts.Renew <= 0 {
		opts.Renew = 5 * time.Minute
	}
	if opts.PodStartTimeout <= 0 {
		opts.PodStartTimeout = 2 * time.Minute
	}
	r := &Route{opts: opts, nodes: map[string]string{}, fwds: map[string]*forward{}, locks: map[string]*sync.Mutex{}, pods: map[string]string{}}
	if err := r.renew(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Route) renew(ctx context.Context) error {
	creds, err := r.opts.Credentials(ctx)
	if err != nil {
		return err
	}
	cfg := &rest.Config{
		Host: "https://" + creds.ProxyAddr,
		TLSClientConfig: rest.TLSClientConfig{
			ServerName: creds.ServerName,
			CertData:   creds.CertPEM,
			KeyData:    creds.KeyPEM,
			CAData:     creds.CAPEM,
			NextProtos: []string{"http/1.1"},
		},
		QPS:     -1,
		Timeout: 30 * time.Second,
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client through Teleport: %w", err)
	}
	// One request through the proxy now: a proxy or role that refuses
	// Kubernetes access is found before anything is created.
	r.mu.Lock()
	r.creds, r.rest, r.cs = creds, cfg, cs
	r.mu.Unlock()
	if _, err := cs.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{Limit: 1, LabelSelector: podLabel + "=" + podLabelVal}); err != nil {
		return fmt.Errorf("reach the cluster's Kubernetes API through Teleport (%s): %w", creds.ProxyAddr, r.explain(err))
	}
	return nil
}

func (r *Route) client(ctx context.Context) (*kubernetes.Clientset, *rest.Config, error) {
	r.mu.Lock()
	left := time.Until(r.creds.Expires)
	r.mu.Unlock()
	if left < r.opts.Renew {
		if err := r.renew(ctx); err != nil {
			return nil, nil, err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cs, r.rest, nil
}

// Kube is a client of the cluster's Kubernetes API through Teleport, with
// the route's current credentials.
func (r *Route) Kube(ctx context.Context) (*kube.Client, error) {
	_, cfg, err := r.client(ctx)
	if err != nil {
		return nil, err
	}
	return kube.NewForConfig(rest.CopyConfig(cfg))
}

// Describe names the route, for messages.
func (r *Route) Describe() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("Teleport Kubernetes access (%s via %s) → port-forward to a hostNetwork pod on the node → apid on loopback", r.creds.KubeCluster, r.creds.ProxyAddr)
}

// AddNode tells the route that the node at ip is the Kubernetes node name.
func (r *Route) AddNode(ip, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nodes[ip] = name
	if r.locks[name] == nil {
		r.locks[name] = &sync.Mutex{}
	}
}

func (r *Route) emit(format string, args ...any) {
	if r.opts.OnEvent != nil {
		r.opts.OnEvent(fmt.Sprintf(format, args...))
	}
}

// Dial is a talos.Dialer: "<node ip>:50000" reaches that node's apid
// through its pod. Other ports are refused.
func (r *Route) Dial(ctx context.Context, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if port != "50000" {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	r.mu.Lock()
	node, ok := r.nodes[host]
	lock := r.locks[node]
	r.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("dial %s: %w", addr, ErrNoSuchNode)
	}
	lock.Lock()
	local, err := r.ensure(ctx, node)
	lock.Unlock()
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf("inside route to %s: %w", node, err)}
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", local)
}

// ensure returns the local address of a working forward to node's apid,
// creating the pod and the forward when there is none, or when the pod no
// longer runs (the node rebooted: its pods were terminated with it).
func (r *Route) ensure(ctx context.Context, node string) (string, error) {
	cs, cfg, err := r.client(ctx)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	f := r.fwds[node]
	r.mu.Unlock()
	if f != nil && f.alive() {
		p, err := cs.CoreV1().Pods(Namespace).Get(ctx, f.pod, metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning {
			return f.local, nil
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("read pod %s/%s: %w", Namespace, f.pod, r.explain(err))
		}
	}
	if f != nil {
		r.retire(ctx, cs, node, f)
	}
	pod, err := r.startPod(ctx, cs, node)
	if err != nil {
		return "", r.explain(err)
	}
	f, err = r.forward(cfg, pod)
	if err != nil {
		return "", r.explain(err)
	}
	r.mu.Lock()
	r.fwds[node] = f
	r.mu.Unlock()
	r.emit("port-forward to %s/%s port %d on %s", Namespace, pod, apidPort, f.local)
	return f.local, nil
}

// retire stops a forward and deletes its pod.
func (r *Route) retire(ctx context.Context, cs *kubernetes.Clientset, node string, f *forward) {
	close(f.stop)
	<-f.done
	r.mu.Lock()
	delete(r.fwds, node)
	r.mu.Unlock()
	_ = r.deletePod(ctx, cs, f.pod)
}

func podFor(node string) *corev1.Pod {
	deadline := int64(PodDeadline / time.Second)
	grace := int64(0)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "rawkode-cloud-apid-",
			Namespace:    Namespace,
			Labels:       map[string]string{podLabel: podLabelVal},
		},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			HostNetwork:                   true,
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         &deadline,
			TerminationGracePeriodSeconds: &grace,
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers:                    []corev1.Container{{Name: "pause", Image: PauseImage}},
		},
	}
}

// startPod creates a pod on node and waits until it runs. The pod is
// recorded for deletion as soon as it exists.
func (r *Route) startPod(ctx context.Context, cs *kubernetes.Clientset, node string) (string, error) {
	p, err := cs.CoreV1().Pods(Namespace).Create(ctx, podFor(node), metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("create a hostNetwork pod on %s through Teleport: %w", node, err)
	}
	name := p.Name
	r.mu.Lock()
	r.pods[name] = node // undo, recorded next to the create
	r.mu.Unlock()
	r.emit("created pod %s/%s on %s", Namespace, name, node)
	wctx, cancel := context.WithTimeout(ctx, r.opts.PodStartTimeout)
	defer cancel()
	err = wait.Until(wctx, fmt.Sprintf("pod %s/%s on %s to run", Namespace, name, node), r.opts.Wait, func(ctx context.Context) (bool, string, error) {
		p, err := cs.CoreV1().Pods(Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		switch p.Status.Phase {
		case corev1.PodRunning:
			return true, "running", nil
		case corev1.PodFailed, corev1.PodSucceeded:
			return false, "", fmt.Errorf("pod %s/%s ended (%s: %s)", Namespace, name, p.Status.Reason, p.Status.Message)
		}
		return false, strings.ToLower(string(p.Status.Phase)), nil
	})
	if err != nil {
		_ = r.deletePod(context.WithoutCancel(ctx), cs, name)
		return "", err
	}
	return name, nil
}

func (r *Route) deletePod(ctx context.Context, cs *kubernetes.Clientset, name string) error {
	err := cs.CoreV1().Pods(Namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete pod %s/%s: %w", Namespace, name, r.explain(err))
	}
	r.mu.Lock()
	delete(r.pods, name)
	r.mu.Unlock()
	r.emit("deleted pod %s/%s", Namespace, name)
	return nil
}

// forward starts client-go's port-forward (SPDY) from 127.0.0.1:0 to the
// pod's port 50000.
func (r *Route) forward(cfg *rest.Config, pod string) (*forward, error) {
	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	u := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(Namespace).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	f := &forward{pod: pod, stop: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan struct{})
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", apidPort)}, f.stop, ready, io.Discard, io.Discard)
	if err != nil {
		return nil, err
	}
	go func() {
		f.err = pf.ForwardPorts()
		close(f.done)
	}()
	select {
	case <-ready:
	case <-f.done:
		return nil, fmt.Errorf("port-forward to pod %s/%s: %w", Namespace, pod, f.err)
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) == 0 {
		close(f.stop)
		<-f.done
		return nil, fmt.Errorf("port-forward to pod %s/%s: no local port", Namespace, pod)
	}
	f.local = fmt.Sprintf("127.0.0.1:%d", ports[0].Local)
	return f, nil
}

// Close stops every forward and deletes every pod the route created. It
// names the pods it could not delete.
func (r *Route) Close(ctx context.Context) error {
	r.mu.Lock()
	fwds := r.fwds
	r.fwds = map[string]*forward{}
	r.mu.Unlock()
	for _, f := range fwds {
		close(f.stop)
		<-f.done
	}
	cs, _, err := r.client(ctx)
	r.mu.Lock()
	var pods []string
	for p := range r.pods {
		pods = append(pods, p)
	}
	r.mu.Unlock()
	sort.Strings(pods)
	if err != nil {
		if len(pods) == 0 {
			return nil
		}
		return fmt.Errorf("delete pods %s/%s: %w", Namespace, strings.Join(pods, ", "), err)
	}
	var errs []error
	for _, p := range pods {
		if err := r.deletePod(ctx, cs, p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Pods lists the pods the route created and has not deleted, for tests.
func (r *Route) Pods() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for p := range r.pods {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
