package teleport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/gravitational/teleport/api/client"
	"github.com/gravitational/teleport/api/client/proto"
	"github.com/gravitational/teleport/api/utils/keys"
	"github.com/gravitational/trace"

	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/retry"
)

// ErrKubeAccessDenied means the identity's Teleport roles do not allow
// Kubernetes access to the cluster.
var ErrKubeAccessDenied = errors.New("the Teleport identity may not use Kubernetes access to this cluster: its role needs kubernetes_labels matching the cluster and kubernetes_groups [" + machineconfig.InsideRouteGroup + "] (which provisioning binds to the inside route's rights) or [system:masters] (or kubernetes_users with the same rights)")

// KubeCredentials reach one kube cluster through Teleport's proxy: a
// short-lived client certificate routed to the cluster, the proxy's
// address and the TLS server name its TLS routing sends to the kube proxy.
// Key material: never log it.
type KubeCredentials struct {
	KubeCluster string
	ProxyAddr   string // host:port
	ServerName  string // kube-teleport-proxy-alpn.<teleport cluster>
	CertPEM     []byte
	KeyPEM      []byte
	CAPEM       []byte
	Expires     time.Time
	// User is the Teleport user; KubeUsers and KubeGroups are the
	// Kubernetes users and groups its roles mapped to when the certificate
	// was issued (Teleport impersonates them; the cluster's RBAC decides
	// what they may do).
	User       string
	KubeUsers  []string
	KubeGroups []string
}

// String describes the credentials without their key.
func (k KubeCredentials) String() string {
	return fmt.Sprintf("Teleport Kubernetes access to %s through %s (certificate until %s)", k.KubeCluster, k.ProxyAddr, k.Expires.UTC().Format(time.RFC3339))
}

// GoString keeps %#v from printing the key.
func (k KubeCredentials) GoString() string { return k.String() }

// KubeCredentials asks the auth service for a certificate routed to
// kubeCluster, valid for ttl, with the identity in use — what `tsh kube
// login` does (GenerateUserCerts with Usage Kubernetes). The key is made
// here and never leaves the process.
func (c *Client) KubeCredentials(ctx context.Context, kubeCluster string, ttl time.Duration) (KubeCredentials, error) {
	out := KubeCredentials{KubeCluster: kubeCluster}
	if c.user == "" {
		// The auth service would refuse a request for no user as one for
		// someone else; say what is really wrong.
		return out, fmt.Errorf("get Teleport Kubernetes credentials for %s: the Teleport user of the identity %s is unknown: its TLS certificate could not be read (log in again with `tsh login`, or set teleport-identity-file)", kubeCluster, c.identity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return out, err
	}
	pub, err := keys.MarshalPublicKey(&key.PublicKey)
	if err != nil {
		return out, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return out, err
	}
	var pong proto.PingResponse
	var certs *proto.Certs
	err = c.retry.Do(ctx, func(ctx context.Context) error {
		return c.attempt(ctx, func(ctx context.Context) error {
			var err error
			if pong, err = c.api.Ping(ctx); err != nil {
				return classify(err)
			}
			certs, err = c.api.GenerateUserCerts(ctx, proto.UserCertsRequest{
				TLSPublicKey:      pub,
				Username:          c.user,
				Expires:           time.Now().Add(ttl),
				RouteToCluster:    pong.ClusterName,
				KubernetesCluster: kubeCluster,
				Usage:             proto.UserCertsRequest_Kubernetes,
			})
			if trace.IsAccessDenied(err) {
				return retry.Permanent(fmt.Errorf("%w (identity %s): %v", ErrKubeAccessDenied, c.identity, err))
			}
			return classify(err)
		})
	})
	if err != nil {
		return out, fmt.Errorf("get Teleport Kubernetes credentials for %s: %w", kubeCluster, err)
	}
	if len(certs.TLS) == 0 || len(certs.TLSCACerts) == 0 {
		return out, fmt.Errorf("get Teleport Kubernetes credentials for %s: the auth service sent no TLS certificate", kubeCluster)
	}
	block, _ := pem.Decode(certs.TLS)
	if block == nil {
		return out, errors.New("teleport kube certificate: not PEM")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return out, fmt.Errorf("teleport kube certificate: %w", err)
	}
	out.ProxyAddr = pong.ProxyPublicAddr
	out.ServerName = KubeSNI(pong.ClusterName)
	out.CertPEM = certs.TLS
	out.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	for _, ca := range certs.TLSCACerts {
		out.CAPEM = append(out.CAPEM, ca...)
	}
	out.Expires = leaf.NotAfter
	out.User = leaf.Subject.CommonName
	_, out.KubeUsers, out.KubeGroups = KubeIdentity(leaf)
	return out, nil
}

// credentialsUser is the Teleport user the credentials' TLS certificate
// was issued to — an identity file's or the tsh profile's alike (the
// profile's certificate is where `tsh status` reads the user from) — or ""
// when it cannot be read. GenerateUserCerts needs it: the auth service
// issues certificates only for the caller's own user.
func credentialsUser(creds client.Credentials) string {
	tc, err := creds.TLSConfig()
	if err != nil {
		return ""
	}
	// The SDK hands its certificate out through GetClientCertificate, so
	// that it is sent whatever the server asks for.
	var tlsCert *tls.Certificate
	switch {
	case len(tc.Certificates) > 0:
		tlsCert = &tc.Certificates[0]
	case tc.GetClientCertificate != nil:
		if tlsCert, err = tc.GetClientCertificate(&tls.CertificateRequestInfo{}); err != nil {
			return ""
		}
	}
	if tlsCert == nil || len(tlsCert.Certificate) == 0 {
		return ""
	}
	if tlsCert.Leaf != nil {
		return tlsCert.Leaf.Subject.CommonName
	}
	cert, err := x509.ParseCertificate(tlsCert.Certificate[0])
	if err != nil {
		return ""
	}
	return cert.Subject.CommonName
}
