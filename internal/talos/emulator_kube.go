package talos

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/siderolabs/talos/pkg/machinery/config"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	kubeemulator "github.com/rawkode/rawkode-cloud/internal/kube/emulator"
)

// The node's share of the cluster's Kubernetes API: its kube-apiserver
// serves the cluster's API (NodeOptions.Kube) on 6443 to clients holding a
// certificate from the cluster CA; once etcd is healthy its kubelet
// registers the node and Talos applies the bootstrap, inline and extra
// manifests the way the real manifest controller does (kube/emulator's
// ApplyUntilDone).

// talosManifests stands in for Talos's own bootstrap manifests: CoreDNS
// always, kube-proxy unless disabled, flannel unless the CNI is "none".
// Names, namespaces and the properties that matter for the order of things
// (host network, the CNI config mount) are Talos's.
func talosManifests(cfg config.Config) []string {
	out := []string{coreDNSManifest}
	if cfg.Cluster().Proxy().Enabled() {
		out = append(out, kubeProxyManifest)
	}
	if cfg.Cluster().Network().CNI().Name() == "flannel" {
		out = append(out, flannelManifest)
	}
	return out
}

const coreDNSManifest = `apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 2
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      containers:
      - {name: coredns, image: registry.k8s.io/coredns/coredns:v1.12.4}
`

const kubeProxyManifest = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: kube-proxy, namespace: kube-system}
spec:
  selector: {matchLabels: {k8s-app: kube-proxy}}
  template:
    metadata: {labels: {k8s-app: kube-proxy}}
    spec:
      hostNetwork: true
      containers:
      - {name: kube-proxy, image: registry.k8s.io/kube-proxy:v1.35.1}
`

const flannelManifest = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: kube-flannel, namespace: kube-system}
spec:
  selector: {matchLabels: {k8s-app: flannel}}
  template:
    metadata: {labels: {k8s-app: flannel}}
    spec:
      hostNetwork: true
      containers:
      - {name: kube-flannel, image: ghcr.io/siderolabs/flannel:v0.27.4}
      volumes:
      - {name: cni, hostPath: {path: /etc/cni/net.d}}
`

// kubeServingLocked picks the cluster's API for a node that came up with cfg.
func (n *Node) kubeServingLocked(cfg config.Config) {
	if n.opts.Kube == nil {
		return
	}
	n.kube = n.opts.Kube(cfg.Cluster().Name())
	if ca, _, err := clusterCA(cfg); err == nil {
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		n.kubeCAs = pool
	}
}

// startKubeLocked registers the node and starts Talos's manifest apply:
// both need a healthy etcd behind the API server.
func (n *Node) startKubeLocked(cfg config.Config) {
	k := n.kube
	if k == nil || n.kubeStarted {
		return
	}
	n.kubeStarted = true
	name := n.kubeNodeName()
	var manifests []string
	manifests = append(manifests, talosManifests(cfg)...)
	for _, m := range cfg.Cluster().InlineManifests() {
		manifests = append(manifests, m.Contents())
	}
	extra := cfg.Cluster().Network().CNI().URLs()
	extra = append(extra, cfg.Cluster().ExtraManifestURLs()...)
	ctx, cancel := untilClosed(n.done)
	backoff := n.opts.ApplyBackoff
	if backoff.Initial <= 0 {
		backoff = kubeemulator.TalosBackoff
	}
	register := n.kubeletRegistersLocked()
	go func() {
		defer cancel()
		if register {
			_ = k.AddNode(name, true)
		}
		for _, url := range extra {
			if n.opts.FetchManifest == nil {
				return // no network: Talos would keep retrying the download
			}
			m, err := n.opts.FetchManifest(ctx, url)
			if err != nil {
				return
			}
			manifests = append(manifests, m)
		}
		objects, err := kubeemulator.ManifestObjects(manifests)
		if err != nil {
			return
		}
		_ = kubeemulator.ApplyUntilDone(ctx, kubeemulator.InProcessConfig(k), objects, backoff, nil)
	}()
}

// kubeNodeName is the Node a kubelet registers: the node's hostname (Talos's
// nodename controller takes it from the hostname), and for a node without
// one, Talos's default name, made of its address.
func (n *Node) kubeNodeName() string {
	if n.hostname != "" {
		return n.hostname
	}
	return "talos-" + strings.ReplaceAll(n.opts.PublicIP.String(), ".", "-")
}

// kubeletRegistersLocked says whether the kubelet's Node will ever appear
// (a talos.kubelet=never fault says it will not).
func (n *Node) kubeletRegistersLocked() bool {
	if n.faults.Peek(FaultKubelet, emulator.Never) {
		n.faults.Check(FaultKubelet)
		return false
	}
	return true
}

// registerKubeletLocked registers a worker's kubelet, which reached a control
// plane's API server: workers run no manifest apply (only control planes do).
func (n *Node) registerKubeletLocked() {
	if n.kube == nil || n.kubeStarted {
		return
	}
	n.kubeStarted = true
	if !n.kubeletRegistersLocked() {
		return
	}
	k, name := n.kube, n.kubeNodeName()
	go func() { _ = k.AddNode(name, false) }()
}

// serveKube answers one client connection with the cluster's API.
func (n *Node) serveKube(c net.Conn, cert tls.Certificate, cas *x509.CertPool, h http.Handler) {
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
	if cas != nil {
		// kube-apiserver takes client certificates from the cluster CA.
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, cas
	}
	tc := tls.Server(c, cfg)
	if tc.Handshake() != nil {
		return
	}
	ln := &oneConnListener{conn: tc, done: make(chan struct{})}
	srv := &http.Server{Handler: h}
	_ = srv.Serve(ln)
	<-ln.done
}

// oneConnListener hands one connection to an http.Server and reports
// (done) when the server is through with it.
type oneConnListener struct {
	conn   net.Conn
	once   sync.Once
	served bool
	done   chan struct{}
	mu     sync.Mutex
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.served {
		<-l.done
		return nil, net.ErrClosed
	}
	l.served = true
	return &notifyConn{Conn: l.conn, closed: func() { l.once.Do(func() { close(l.done) }) }}, nil
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }

type notifyConn struct {
	net.Conn
	closed func()
}

func (c *notifyConn) Close() error {
	defer c.closed()
	return c.Conn.Close()
}

// kubeletLocked tells the cluster's API that this node's kubelet stopped or
// runs again, once it has registered: the Node's Ready condition follows
// its kubelet (a reboot for an upgrade takes it NotReady, and back).
// Lock order: n.mu, then the API server's own.
func (n *Node) kubeletLocked(running bool) {
	if n.kube == nil || !n.kubeStarted {
		return
	}
	n.kube.SetKubeletRunning(n.kubeNodeName(), running)
}
