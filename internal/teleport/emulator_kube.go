package teleport

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/gravitational/teleport/api/client/proto"
	"github.com/gravitational/teleport/api/constants"
	"github.com/gravitational/teleport/api/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

// Kubernetes access, as a Teleport cluster with TLS routing serves it: the
// proxy's public address also carries Kubernetes traffic, told apart by
// the TLS server name "kube-teleport-proxy-alpn.<teleport cluster>"
// (constants.KubeTeleportProxyALPNPrefix; what `tsh kube login` writes as
// tls-server-name). A client first asks the auth service for a short-lived
// certificate routed to one kube cluster (GenerateUserCerts with Usage
// Kubernetes and KubernetesCluster), then talks to the cluster's API
// through the proxy with it. The proxy checks the certificate, the kube
// cluster (an agent must be heartbeating for it) and the identity's roles
// — kubernetes_labels must match the cluster and the role must name at
// least one kubernetes_groups or kubernetes_users entry ("To authenticate
// to a Kubernetes cluster via Teleport, your Teleport user's roles must
// allow access as at least one Kubernetes user or group", Teleport's
// Kubernetes access docs) — and forwards the request to the cluster's API
// impersonating those groups and users, upgrades (port-forward, exec)
// included.

// FaultKubeProxy fires on every request through the kube proxy: "deny"
// answers 403 as a role without Kubernetes access gets, "error" a 500,
// "unavailable" a 503, "hang" holds the request.
const FaultKubeProxy = "teleport.kube-proxy"

// Counter names of Kubernetes access.
const (
	OpGenerateUserCerts = "GenerateUserCerts"
	OpKubeProxy         = "KubeProxy"
)

// MaxKubeCertTTL bounds a Kubernetes certificate, as a role's default
// max_session_ttl (12h) does.
const MaxKubeCertTTL = 12 * time.Hour

// Teleport's tlsca puts the Kubernetes side of an identity in the
// subject's extra names under these OIDs (KubeUsersASN1ExtensionOID,
// KubeGroupsASN1ExtensionOID, KubeClusterASN1ExtensionOID): the users and
// groups the roles map to, and the kube cluster the certificate is routed
// to. `tsh status` shows the first two from there.
var (
	kubeUsersOID   = asn1.ObjectIdentifier{1, 3, 9999, 1, 1}
	kubeGroupsOID  = asn1.ObjectIdentifier{1, 3, 9999, 1, 2}
	kubeClusterOID = asn1.ObjectIdentifier{1, 3, 9999, 1, 3}
)

// kubeIdentityNames encodes a kube certificate's extra subject names.
func kubeIdentityNames(cluster string, users, groups []string) []pkix.AttributeTypeAndValue {
	names := []pkix.AttributeTypeAndValue{{Type: kubeClusterOID, Value: cluster}}
	for _, u := range users {
		names = append(names, pkix.AttributeTypeAndValue{Type: kubeUsersOID, Value: u})
	}
	for _, g := range groups {
		names = append(names, pkix.AttributeTypeAndValue{Type: kubeGroupsOID, Value: g})
	}
	return names
}

// KubeIdentity reads what a Teleport kube certificate says: the kube
// cluster it is routed to and the Kubernetes users and groups its roles
// mapped to when it was issued.
func KubeIdentity(cert *x509.Certificate) (cluster string, users, groups []string) {
	for _, n := range cert.Subject.Names {
		v, _ := n.Value.(string)
		switch {
		case n.Type.Equal(kubeClusterOID):
			cluster = v
		case n.Type.Equal(kubeUsersOID):
			users = append(users, v)
		case n.Type.Equal(kubeGroupsOID):
			groups = append(groups, v)
		}
	}
	return cluster, users, groups
}

// kubeAccess is what the roles grant on a kube cluster with labels: the
// Kubernetes groups and users to impersonate, or why not.
func kubeAccess(roles []types.Role, labels map[string]string) (groups, users []string, err error) {
	for _, r := range roles {
		if labelsMatch(r.GetKubernetesLabels(types.Deny), labels) {
			return nil, nil, fmt.Errorf("access to this kubernetes cluster is denied by role %q", r.GetName())
		}
	}
	for _, r := range roles {
		if !labelsMatch(r.GetKubernetesLabels(types.Allow), labels) {
			continue
		}
		groups = append(groups, r.GetKubeGroups(types.Allow)...)
		users = append(users, r.GetKubeUsers(types.Allow)...)
	}
	if len(groups) == 0 && len(users) == 0 {
		return nil, nil, errors.New("your Teleport roles do not allow Kubernetes access to this cluster: a role needs kubernetes_labels matching the cluster and at least one of kubernetes_groups or kubernetes_users")
	}
	return groups, users, nil
}

// labelsMatch is Teleport's label matching for kubernetes_labels: every
// key of the selector must match ("*": "*" matches everything).
func labelsMatch(sel types.Labels, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, vals := range sel {
		if k == types.Wildcard {
			if len(vals) > 0 && vals[0] == types.Wildcard {
				continue
			}
			return false
		}
		v, ok := labels[k]
		if !ok {
			return false
		}
		hit := false
		for _, want := range vals {
			if want == types.Wildcard || want == v {
				hit = true
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

// liveKubeCluster returns the labels of clusterName's kube cluster when an
// agent serves it now.
func (e *Emulator) liveKubeCluster(clusterName string) (map[string]string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, reg := range e.kube {
		if reg.left.IsZero() && reg.srv.GetCluster().GetName() == clusterName {
			return copyLabels(reg.srv.GetCluster().GetStaticLabels()), true
		}
	}
	return nil, false
}

func (s *authServer) GenerateUserCerts(ctx context.Context, req *proto.UserCertsRequest) (*proto.Certs, error) {
	s.e.count(OpGenerateUserCerts)
	e := s.e
	// Users may generate certificates for themselves only; an empty
	// Username is someone else too (auth's ServerWithRoles.GenerateUserCerts).
	if req.Username != e.opts.User {
		return nil, status.Errorf(codes.PermissionDenied, "user %q has requested to generate certs for %q", e.opts.User, req.Username)
	}
	if req.RouteToCluster != "" && req.RouteToCluster != e.opts.ClusterName {
		return nil, status.Errorf(codes.NotFound, "cluster %q is not found", req.RouteToCluster)
	}
	if req.Usage != proto.UserCertsRequest_Kubernetes || req.KubernetesCluster == "" {
		return nil, status.Error(codes.Unimplemented, "the emulated auth service issues Kubernetes certificates only")
	}
	labels, ok := e.liveKubeCluster(req.KubernetesCluster)
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "kubernetes cluster %q is not registered in this teleport cluster; you can list registered kubernetes clusters using 'tsh kube ls'", req.KubernetesCluster)
	}
	groups, users, err := kubeAccess(e.roles(), labels)
	if err != nil {
		return nil, status.Errorf(codes.PermissionDenied, "access to kubernetes cluster %q denied: %v", req.KubernetesCluster, err)
	}
	block, _ := pem.Decode(req.TLSPublicKey)
	if block == nil {
		return nil, status.Error(codes.InvalidArgument, "missing or malformed TLS public key")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "parse TLS public key: %v", err)
	}
	now := time.Now()
	notAfter := now.Add(MaxKubeCertTTL)
	if !req.Expires.IsZero() && req.Expires.Before(notAfter) {
		notAfter = req.Expires
	}
	roles := []string{}
	for _, r := range e.roles() {
		roles = append(roles, r.GetName())
	}
	certPEM, err := e.ca.issue(&x509.Certificate{
		Subject: pkix.Name{CommonName: e.opts.User, Organization: roles,
			ExtraNames: kubeIdentityNames(req.KubernetesCluster, users, groups)},
		NotBefore:   now.Add(-time.Minute),
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, pub)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "sign: %v", err)
	}
	return &proto.Certs{TLS: certPEM, TLSCACerts: [][]byte{e.ca.tlsCertPEM}}, nil
}

// KubeSNI is the TLS server name Kubernetes traffic to the proxy uses.
func KubeSNI(teleportCluster string) string {
	return constants.KubeTeleportProxyALPNPrefix + teleportCluster
}

// kubeProxy is the proxy's Kubernetes side.
type kubeProxy struct {
	e       *Emulator
	tls     *tls.Config
	srv     *http.Server
	ln      *connListener
	backend *http.Server // the agents' side: the clusters' APIs, in process
	backLn  net.Listener
}

// kubeClusterHeader tells the in-process backend which cluster a proxied
// request is for (the agent's tunnel does in real life); clients cannot set it.
const kubeClusterHeader = "X-Emulator-Kube-Cluster"

func newKubeProxy(e *Emulator) (*kubeProxy, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	certPEM, err := e.ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: KubeSNI(e.opts.ClusterName)},
		DNSNames:    []string{KubeSNI(e.opts.ClusterName), "*." + constants.APIDomain},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, &key.PublicKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(e.ca.tlsCert)
	// The agents' side listens on loopback TCP: a synchronous in-memory
	// pipe would fail a request whose body the API server does not read
	// (a DELETE's options) when the server closes first.
	backLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &kubeProxy{e: e, ln: newConnListener(), backLn: backLn}
	p.tls = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 30 * time.Second}
	p.backend = &http.Server{Handler: http.HandlerFunc(p.serveBackend), ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = p.srv.Serve(p.ln) }()
	go func() { _ = p.backend.Serve(p.backLn) }()
	return p, nil
}

func (p *kubeProxy) close() {
	p.ln.Close()
	p.backLn.Close()
	_ = p.srv.Close()
	_ = p.backend.Close()
}

// kubeStatus answers with a Kubernetes Status, as the kube proxy does, so
// that kubectl and client-go show the message.
func kubeStatus(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
		"status": "Failure", "message": msg, "reason": reason, "code": code})
}

func (p *kubeProxy) serve(w http.ResponseWriter, r *http.Request) {
	e := p.e
	e.count(OpKubeProxy)
	if err := e.faults.Delay(r.Context(), FaultKubeProxy); err != nil {
		kubeStatus(w, http.StatusServiceUnavailable, "ServiceUnavailable", err.Error())
		return
	}
	if kind, ok := e.faults.Check(FaultKubeProxy); ok {
		switch kind {
		case emulator.Deny:
			kubeStatus(w, http.StatusForbidden, "Forbidden", "access denied: your Teleport roles do not allow Kubernetes access to this cluster (emulated teleport.kube-proxy=deny)")
		case emulator.Unavailable:
			kubeStatus(w, http.StatusServiceUnavailable, "ServiceUnavailable", "emulated: kube proxy unavailable")
		case emulator.Hang, emulator.Never:
			emulator.HangCtx(r.Context(), e.done)
			kubeStatus(w, http.StatusServiceUnavailable, "ServiceUnavailable", "emulated: kube proxy hang released")
		default:
			kubeStatus(w, http.StatusInternalServerError, "InternalError", "emulated: kube proxy internal error")
		}
		return
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		kubeStatus(w, http.StatusUnauthorized, "Unauthorized", "a Teleport client certificate is required")
		return
	}
	leaf := r.TLS.PeerCertificates[0]
	// The proxy decides with the roles as they are now, not with the
	// groups the certificate was issued with.
	cluster, _, _ := KubeIdentity(leaf)
	if cluster == "" {
		kubeStatus(w, http.StatusForbidden, "Forbidden", "this certificate is not routed to a Kubernetes cluster: request one with 'tsh kube login' (GenerateUserCerts with KubernetesCluster)")
		return
	}
	labels, ok := e.liveKubeCluster(cluster)
	if !ok {
		kubeStatus(w, http.StatusNotFound, "NotFound", fmt.Sprintf("kubernetes cluster %q not found", cluster))
		return
	}
	groups, users, err := kubeAccess(e.roles(), labels)
	if err != nil {
		kubeStatus(w, http.StatusForbidden, "Forbidden", err.Error())
		return
	}
	out := r.Clone(r.Context())
	for k := range out.Header {
		if strings.HasPrefix(strings.ToLower(k), "impersonate-") || strings.EqualFold(k, "Authorization") || strings.EqualFold(k, kubeClusterHeader) {
			out.Header.Del(k)
		}
	}
	user := leaf.Subject.CommonName
	if len(users) > 0 {
		user = users[0]
	}
	out.Header.Set("Impersonate-User", user)
	for _, g := range groups {
		out.Header.Add("Impersonate-Group", g)
	}
	out.Header.Set(kubeClusterHeader, cluster)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "kube-agent.internal"
			pr.Out.Host = "kube-agent.internal"
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", p.backLn.Addr().String())
		}, DisableKeepAlives: true},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			kubeStatus(w, http.StatusBadGateway, "InternalError", "kube agent: "+err.Error())
		},
	}
	rp.ServeHTTP(w, out)
}

// serveBackend is the agent's end: the cluster's own API.
func (p *kubeProxy) serveBackend(w http.ResponseWriter, r *http.Request) {
	cluster := r.Header.Get(kubeClusterHeader)
	r.Header.Del(kubeClusterHeader)
	var h http.Handler
	if p.e.opts.KubeBackend != nil {
		h = p.e.opts.KubeBackend(cluster)
	}
	if h == nil {
		kubeStatus(w, http.StatusBadGateway, "InternalError", fmt.Sprintf("the kube agent of %q cannot reach its cluster's API", cluster))
		return
	}
	h.ServeHTTP(w, r)
}

// routeConns reads the TLS server name of each connection to the proxy's
// address and hands it to the kube proxy or the gRPC API, as Teleport's
// TLS routing does.
func (e *Emulator) routeConns(lis net.Listener, grpcLn *connListener) {
	for {
		c, err := lis.Accept()
		if err != nil {
			grpcLn.Close()
			return
		}
		go func() {
			sni, replay, err := peekSNI(c)
			if err != nil {
				c.Close()
				return
			}
			if e.kubeProxy != nil && sni == KubeSNI(e.opts.ClusterName) {
				if !e.kubeProxy.ln.push(tls.Server(replay, e.kubeProxy.tls)) {
					c.Close()
				}
				return
			}
			if !grpcLn.push(replay) {
				c.Close()
			}
		}()
	}
}

// peekSNI reads the TLS ClientHello of c and returns its server name and a
// connection that replays what was read.
func peekSNI(c net.Conn) (string, net.Conn, error) {
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var buf bytes.Buffer
	var sni string
	errStop := errors.New("stop")
	_ = tls.Server(readOnlyConn{r: io.TeeReader(c, &buf), Conn: c}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			sni = h.ServerName
			return nil, errStop
		},
	}).Handshake()
	_ = c.SetReadDeadline(time.Time{})
	if buf.Len() == 0 {
		return "", nil, errors.New("no ClientHello")
	}
	return sni, &replayConn{Conn: c, r: io.MultiReader(bytes.NewReader(buf.Bytes()), c)}, nil
}

// readOnlyConn lets the ClientHello be read without anything written back.
type readOnlyConn struct {
	r io.Reader
	net.Conn
}

func (c readOnlyConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c readOnlyConn) Write(p []byte) (int, error) { return 0, io.ErrClosedPipe }

type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// connListener hands connections to a server.
type connListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *connListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
