package talos

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/common"
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"gopkg.in/yaml.v3"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

// kubeconfigChunk is the size of the common.Data messages the emulated node
// streams. machined sends the archive in one message; smaller chunks make
// the client's reassembly (ReadStream) do real work.
const kubeconfigChunk = 512

// Kubeconfig streams an admin kubeconfig as a one-file tar.gz, as machined
// does. Unlike a real node — which derives it from the config's secrets at
// any time — the emulated node refuses with FailedPrecondition until etcd is
// bootstrapped: a kubeconfig for a cluster that does not exist yet is a
// pipeline-ordering bug worth surfacing.
func (s *machineServer) Kubeconfig(_ *emptypb.Empty, stream grpc.ServerStreamingServer[common.Data]) error {
	s.n.counters.Inc("Kubeconfig")
	ctx := stream.Context()
	if err := s.configuredOnly(); err != nil {
		return err
	}
	if _, err := s.fault(ctx, FaultKubeconfig, emulator.Error, emulator.Unavailable, emulator.RateLimit, emulator.Hang); err != nil {
		return err
	}
	s.n.mu.Lock()
	raw, bootstrapped := append([]byte(nil), s.n.cfgBytes...), s.n.bootstrapped
	s.n.mu.Unlock()
	cfg, err := configloader.NewFromBytes(raw)
	if err != nil {
		return status.Error(codes.Internal, "load the machine configuration")
	}
	if !cfg.Machine().Type().IsControlPlane() {
		return status.Error(codes.Unimplemented, "kubeconfig is only available on control plane nodes")
	}
	if !bootstrapped {
		return status.Error(codes.FailedPrecondition, "kubeconfig is not available: the cluster is not bootstrapped yet")
	}
	archive, err := adminKubeconfigArchive(cfg, s.n.now())
	if err != nil {
		// The cause names what was missing, never key material.
		return status.Errorf(codes.Internal, "generate admin kubeconfig: %s", err)
	}
	for rest := archive; len(rest) > 0; {
		chunk := rest[:min(kubeconfigChunk, len(rest))]
		rest = rest[len(chunk):]
		if err := stream.Send(&common.Data{Bytes: chunk}); err != nil {
			return err
		}
	}
	return nil
}

// kubeconfigFile is the subset of the kubeconfig v1 format (clientcmd's
// v1.Config) an admin kubeconfig uses; the field names are the wire names.
type kubeconfigFile struct {
	APIVersion     string              `yaml:"apiVersion"`
	Kind           string              `yaml:"kind"`
	Clusters       []kubeconfigCluster `yaml:"clusters"`
	Users          []kubeconfigUser    `yaml:"users"`
	Contexts       []kubeconfigContext `yaml:"contexts"`
	CurrentContext string              `yaml:"current-context"`
}

type kubeconfigCluster struct {
	Name    string `yaml:"name"`
	Cluster struct {
		Server                   string `yaml:"server"`
		CertificateAuthorityData string `yaml:"certificate-authority-data"` // base64 PEM
	} `yaml:"cluster"`
}

type kubeconfigUser struct {
	Name string `yaml:"name"`
	User struct {
		ClientCertificateData string `yaml:"client-certificate-data"` // base64 PEM
		ClientKeyData         string `yaml:"client-key-data"`         // base64 PEM
	} `yaml:"user"`
}

type kubeconfigContext struct {
	Name    string `yaml:"name"`
	Context struct {
		Cluster   string `yaml:"cluster"`
		Namespace string `yaml:"namespace,omitempty"`
		User      string `yaml:"user"`
	} `yaml:"context"`
}

// adminKubeconfig renders the admin kubeconfig machined would produce for
// cfg: the cluster endpoint, the Kubernetes CA, and a fresh client
// certificate (CN admin, O system:masters by default) signed by that CA.
func adminKubeconfig(cfg config.Config, now time.Time) ([]byte, error) {
	caCert, caKey, err := clusterCA(cfg)
	if err != nil {
		return nil, err
	}
	cluster := cfg.Cluster()
	if cluster.Endpoint() == nil {
		return nil, errors.New("config has no cluster endpoint")
	}
	admin := cluster.AdminKubeconfig()
	cn, org, lifetime := constants.KubernetesAdminCertCommonName, constants.KubernetesAdminCertOrganization, constants.KubernetesAdminCertDefaultLifetime
	if admin != nil {
		cn, org, lifetime = admin.CommonName(), admin.CertOrganization(), admin.CertLifetime()
	}
	certPEM, keyPEM, err := clientCert(now, cn, []string{org}, lifetime, caCert, caKey)
	if err != nil {
		return nil, err
	}
	name := cluster.Name()
	ctxName := cn + "@" + name
	var cl kubeconfigCluster
	cl.Name = name
	cl.Cluster.Server = cluster.Endpoint().String()
	cl.Cluster.CertificateAuthorityData = base64.StdEncoding.EncodeToString(cluster.IssuingCA().Crt)
	var u kubeconfigUser
	u.Name = ctxName
	u.User.ClientCertificateData = base64.StdEncoding.EncodeToString(certPEM)
	u.User.ClientKeyData = base64.StdEncoding.EncodeToString(keyPEM)
	var cx kubeconfigContext
	cx.Name = ctxName
	cx.Context.Cluster, cx.Context.Namespace, cx.Context.User = name, "default", ctxName
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2) // as kubectl writes it
	err = enc.Encode(kubeconfigFile{
		APIVersion: "v1", Kind: "Config",
		Clusters: []kubeconfigCluster{cl}, Users: []kubeconfigUser{u}, Contexts: []kubeconfigContext{cx},
		CurrentContext: ctxName,
	})
	if err == nil {
		err = enc.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("encode kubeconfig: %w", err)
	}
	return buf.Bytes(), nil
}

// adminKubeconfigArchive wraps the admin kubeconfig the way machined does:
// a gzipped tar holding one regular file named "kubeconfig".
func adminKubeconfigArchive(cfg config.Config, now time.Time) ([]byte, error) {
	kc, err := adminKubeconfig(cfg, now)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: "kubeconfig", Size: int64(len(kc)), Mode: 0o600, ModTime: now}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, fmt.Errorf("write archive: %w", err)
	}
	if _, err := tw.Write(kc); err != nil {
		return nil, fmt.Errorf("write archive: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write archive: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("write archive: %w", err)
	}
	return buf.Bytes(), nil
}

// clusterCA returns the Kubernetes CA (cluster.ca) with its signing key.
func clusterCA(cfg config.Config) (*x509.Certificate, crypto.Signer, error) {
	if cfg.Cluster() == nil || cfg.Cluster().IssuingCA() == nil {
		return nil, nil, errors.New("config has no cluster.ca")
	}
	ca := cfg.Cluster().IssuingCA()
	cert, err := ca.GetCert()
	if err != nil {
		return nil, nil, errors.New("cluster.ca certificate does not parse")
	}
	if len(ca.Key) == 0 {
		return nil, nil, errors.New("cluster.ca has no key")
	}
	key, err := ca.GetKey()
	if err != nil {
		return nil, nil, errors.New("cluster.ca key does not parse")
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("cluster.ca key of type %T cannot sign", key)
	}
	return cert, signer, nil
}

// clientCert issues a client-auth certificate and returns it and its key as PEM.
func clientCert(now time.Time, cn string, orgs []string, lifetime time.Duration, parent *x509.Certificate, parentKey crypto.Signer) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: orgs},
		// Back-dated like leafCert: a client clock slightly behind still accepts it.
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(lifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign client certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// kubeServingCert issues the kube-apiserver stand-in's certificate from the
// cluster CA, so a client using the admin kubeconfig can verify it as it
// would a real API server.
func (n *Node) kubeServingCert(cfg config.Config) (tls.Certificate, error) {
	caCert, caKey, err := clusterCA(cfg)
	if err != nil {
		return tls.Certificate{}, err
	}
	ips := []netip.Addr{n.opts.PublicIP, netip.MustParseAddr("127.0.0.1")}
	names := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost"}
	sans := cfg.Cluster().CertSANs()
	if ep := cfg.Cluster().Endpoint(); ep != nil {
		sans = append(sans, ep.Hostname())
	}
	for _, san := range sans {
		if ip, perr := netip.ParseAddr(san); perr == nil {
			ips = append(ips, ip)
		} else if san != "" {
			names = append(names, san)
		}
	}
	return leafCert(n.now(), "kube-apiserver", ips, names, caCert, caKey)
}
