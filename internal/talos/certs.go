package talos

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config/config"
)

// leafCert issues a serving certificate for ips and names. A nil parent makes
// it self-signed, which is what maintenance mode and the kube-apiserver
// stand-in present.
func leafCert(now time.Time, cn string, ips []netip.Addr, names []string, parent *x509.Certificate, parentKey crypto.Signer) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		// Back-dated so a client whose clock runs slightly behind still accepts it.
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    names,
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
	}
	signer := crypto.Signer(key)
	if parent == nil {
		parent = tmpl
	} else {
		signer = parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sign certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// osCA returns the machine's OS CA (machine.ca) and the pool of CAs whose
// client certificates apid accepts.
func osCA(cfg config.Config) (*x509.Certificate, crypto.Signer, *x509.CertPool, error) {
	if cfg.Machine() == nil || cfg.Machine().Security() == nil || cfg.Machine().Security().IssuingCA() == nil {
		return nil, nil, nil, errors.New("config has no machine.ca")
	}
	ca := cfg.Machine().Security().IssuingCA()
	cert, err := ca.GetCert()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parse machine.ca certificate: %w", err)
	}
	if len(ca.Key) == 0 {
		return nil, nil, nil, errors.New("machine.ca has no key (worker configs cannot serve apid here)")
	}
	key, err := ca.GetKey()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parse machine.ca key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, nil, fmt.Errorf("machine.ca key of type %T cannot sign", key)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	for _, accepted := range cfg.Machine().Security().AcceptedCAs() {
		if c, err := accepted.GetCert(); err == nil {
			pool.AddCert(c)
		}
	}
	return cert, signer, pool, nil
}
