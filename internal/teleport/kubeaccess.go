package teleport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/gravitational/teleport/api/client/proto"
	"github.com/gravitational/teleport/api/identityfile"
	"github.com/gravitational/teleport/api/utils/keys"
	"github.com/gravitational/trace"

	"github.com/rawkode/rawkode-cloud/internal/retry"
)

// ErrKubeAccessDenied means the identity's Teleport roles do not allow
// Kubernetes access to the cluster.
var ErrKubeAccessDenied = errors.New("the Teleport identity may not use Kubernetes access to this cluster: its role needs kubernetes_labels matching the cluster and kubernetes_groups [system:masters] (or kubernetes_users with the same rights)")

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
	return out, nil
}

// identityUser is the Teleport user an identity was issued to ("" when it
// cannot be read, e.g. with a tsh profile).
func identityUser(cfg Config) string {
	content := cfg.IdentityContent
	if len(content) == 0 && cfg.IdentityFile != "" {
		content, _ = os.ReadFile(cfg.IdentityFile)
	}
	if len(content) == 0 {
		return ""
	}
	id, err := identityfile.FromString(string(content))
	if err != nil {
		return ""
	}
	block, _ := pem.Decode(id.Certs.TLS)
	if block == nil {
		return ""
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return ""
	}
	return cert.Subject.CommonName
}
