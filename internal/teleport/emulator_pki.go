package teleport

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/gravitational/teleport/api/constants"
	"github.com/gravitational/teleport/api/identityfile"
	"golang.org/x/crypto/ssh"
)

// authority is the emulator's in-memory certificate authority: an X.509 CA
// for the mTLS API and an SSH CA, because the official client refuses an
// identity file without an SSH certificate even when it only speaks gRPC.
type authority struct {
	clusterName string
	tlsCert     *x509.Certificate
	tlsCertPEM  []byte
	tlsKey      *ecdsa.PrivateKey
	sshSigner   ssh.Signer
}

func newAuthority(clusterName string, now time.Time) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: clusterName, Organization: []string{clusterName}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("self-sign CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA: %w", err)
	}
	_, sshKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate SSH CA key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(sshKey)
	if err != nil {
		return nil, fmt.Errorf("SSH CA signer: %w", err)
	}
	return &authority{
		clusterName: clusterName,
		tlsCert:     cert,
		tlsCertPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		tlsKey:      key,
		sshSigner:   signer,
	}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		// crypto/rand does not fail on supported platforms; a fixed serial
		// would still produce a valid (if less unique) certificate.
		return big.NewInt(1)
	}
	return n
}

// issue signs an X.509 certificate for pub with the given template fields.
func (a *authority) issue(tmpl *x509.Certificate, pub any) ([]byte, error) {
	tmpl.SerialNumber = serial()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.tlsCert, pub, a.tlsKey)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// serverTLS is the auth service's certificate: the official client verifies
// the name teleport.cluster.local (constants.APIDomain) whatever address it
// dialled; 127.0.0.1 is there for tools that verify the dialled IP.
func (a *authority) serverTLS(now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate server key: %w", err)
	}
	certPEM, err := a.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: constants.APIDomain, Organization: []string{a.clusterName}},
		DNSNames:    []string{constants.APIDomain, "*." + constants.APIDomain, a.clusterName},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, &key.PublicKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sign server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

// identity builds an identity file in the format `tctl auth sign` writes:
// private key, SSH certificate, TLS certificate, SSH CA (known_hosts
// @cert-authority line) and TLS CA.
func (a *authority) identity(user string, now time.Time, ttl time.Duration) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate identity key: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode identity key: %w", err)
	}
	tlsPEM, err := a.issue(&x509.Certificate{
		// Real Teleport encodes the user in the subject CN and roles in O.
		Subject:     pkix.Name{CommonName: user, Organization: []string{"editor"}},
		NotBefore:   now.Add(-time.Minute),
		NotAfter:    now.Add(ttl),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, &key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("sign identity TLS certificate: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("identity SSH key: %w", err)
	}
	sshCert := &ssh.Certificate{
		Key:             sshPub,
		Serial:          serial().Uint64(),
		CertType:        ssh.UserCert,
		KeyId:           user,
		ValidPrincipals: []string{user},
		ValidAfter:      uint64(now.Add(-time.Minute).Unix()),
		ValidBefore:     uint64(now.Add(ttl).Unix()),
	}
	if err := sshCert.SignCert(rand.Reader, a.sshSigner); err != nil {
		return nil, fmt.Errorf("sign identity SSH certificate: %w", err)
	}
	caLine := fmt.Sprintf("@cert-authority %s,*.%s %s clustername=%s&type=host\n",
		a.clusterName, a.clusterName,
		bytes.TrimSpace(ssh.MarshalAuthorizedKey(a.sshSigner.PublicKey())), a.clusterName)
	return identityfile.Encode(&identityfile.IdentityFile{
		PrivateKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		Certs: identityfile.Certs{
			SSH: ssh.MarshalAuthorizedKey(sshCert),
			TLS: tlsPEM,
		},
		CACerts: identityfile.CACerts{
			SSH: [][]byte{[]byte(caLine)},
			TLS: [][]byte{a.tlsCertPEM},
		},
	})
}
