package talos

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"gopkg.in/yaml.v3"

	"github.com/rawkode/rawkode-cloud/internal/retry"
)

func parseKubeconfig(raw []byte) (*kubeconfigFile, error) {
	var kc kubeconfigFile
	if err := yaml.Unmarshal(raw, &kc); err != nil {
		return nil, fmt.Errorf("parse kubeconfig: %w", err)
	}
	return &kc, nil
}

func b64PEM(t *testing.T, field, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("%s is not base64: %v", field, err)
	}
	if blk, _ := pem.Decode(b); blk == nil {
		t.Fatalf("%s is not PEM", field)
	}
	return b
}

func TestKubeconfigAfterBootstrap(t *testing.T) {
	t.Parallel()
	fx := testFixture(t)
	n := fastNode(t, nil)
	rec := &recorder{}
	c := newTestClient(n, rec)
	ctx := testCtx(t, 10*time.Second)
	ip := testPublicIP.String()
	drive(t, ctx, c, n, fx, stageBootstrapped)

	raw, err := c.Kubeconfig(ctx, ip, fx.talosconfig)
	if err != nil {
		t.Fatalf("Kubeconfig: %v", err)
	}
	cfg, err := configloader.NewFromBytes(fx.open)
	if err != nil {
		t.Fatalf("load applied config: %v", err)
	}
	kc, err := parseKubeconfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	name := cfg.Cluster().Name()
	ctxName := "admin@" + name
	if kc.APIVersion != "v1" || kc.Kind != "Config" {
		t.Fatalf("apiVersion/kind = %q/%q", kc.APIVersion, kc.Kind)
	}
	if len(kc.Clusters) != 1 || len(kc.Users) != 1 || len(kc.Contexts) != 1 {
		t.Fatalf("clusters/users/contexts = %d/%d/%d, want 1 each", len(kc.Clusters), len(kc.Users), len(kc.Contexts))
	}
	cx := kc.Contexts[0]
	if kc.CurrentContext != ctxName || cx.Name != ctxName || cx.Context.Cluster != name || cx.Context.User != kc.Users[0].Name || kc.Clusters[0].Name != name {
		t.Fatalf("names do not line up: current %q, context %+v, cluster %q, user %q", kc.CurrentContext, cx, kc.Clusters[0].Name, kc.Users[0].Name)
	}
	server := kc.Clusters[0].Cluster.Server
	if server != cfg.Cluster().Endpoint().String() || server != "https://"+net.JoinHostPort(ip, strconv.Itoa(KubeAPIPort)) {
		t.Fatalf("server = %q, want the config's endpoint %q", server, cfg.Cluster().Endpoint())
	}
	caPEM := b64PEM(t, "certificate-authority-data", kc.Clusters[0].Cluster.CertificateAuthorityData)
	if !bytes.Equal(caPEM, cfg.Cluster().IssuingCA().Crt) {
		t.Fatal("certificate-authority-data is not the config's cluster CA")
	}
	pair, err := tls.X509KeyPair(
		b64PEM(t, "client-certificate-data", kc.Users[0].User.ClientCertificateData),
		b64PEM(t, "client-key-data", kc.Users[0].User.ClientKeyData))
	if err != nil {
		t.Fatalf("client certificate and key do not match: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client certificate does not chain to the cluster CA: %v", err)
	}
	if leaf.Subject.CommonName != "admin" || !slices.Equal(leaf.Subject.Organization, []string{"system:masters"}) {
		t.Fatalf("client subject = %s, want CN=admin,O=system:masters", leaf.Subject)
	}

	// The kube-apiserver stand-in presents a certificate from the same CA,
	// so the kubeconfig verifies it as kubectl would.
	conn, err := n.Dialer()(ctx, net.JoinHostPort(ip, strconv.Itoa(KubeAPIPort)))
	if err != nil {
		t.Fatalf("dial kube-apiserver: %v", err)
	}
	defer conn.Close()
	tc := tls.Client(conn, &tls.Config{RootCAs: roots, ServerName: cfg.Cluster().Endpoint().Hostname(), Certificates: []tls.Certificate{pair}})
	if err := tc.HandshakeContext(ctx); err != nil {
		t.Fatalf("kube-apiserver certificate not trusted through the kubeconfig: %v", err)
	}

	if got := n.Counters().Get("Kubeconfig"); got != 1 {
		t.Fatalf("Kubeconfig calls = %d, want 1", got)
	}
	if _, retries := rec.snapshot(); len(retries) != 0 {
		t.Fatalf("unexpected retries: %v", retries)
	}
}

func TestKubeconfigBeforeBootstrap(t *testing.T) {
	t.Parallel()
	fx := testFixture(t)
	n := fastNode(t, nil)
	rec := &recorder{}
	c := newTestClient(n, rec)
	ctx := testCtx(t, 10*time.Second)
	drive(t, ctx, c, n, fx, stageConfigured)

	raw, err := c.Kubeconfig(ctx, testPublicIP.String(), fx.talosconfig)
	if !errors.Is(err, ErrNotBootstrapped) || raw != nil {
		t.Fatalf("Kubeconfig = %d bytes, %v; want ErrNotBootstrapped", len(raw), err)
	}
	if transient, _ := retry.Classify(err); transient {
		t.Fatalf("err %v classified transient: the pipeline would spin", err)
	}
	if !strings.Contains(err.Error(), "FailedPrecondition") && !strings.Contains(err.Error(), "not bootstrapped yet") {
		t.Fatalf("err = %v, want the node's reason", err)
	}
	for _, secret := range []string{fx.token, fx.clusterKey} {
		if strings.Contains(err.Error(), secret) {
			t.Fatal("error leaks a secret of the config")
		}
	}
	if got := n.Counters().Get("Kubeconfig"); got != 1 {
		t.Fatalf("Kubeconfig calls = %d, want 1 (no retries of a permanent refusal)", got)
	}
	if _, retries := rec.snapshot(); len(retries) != 0 {
		t.Fatalf("unexpected retries: %v", retries)
	}
}
