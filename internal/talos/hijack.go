package talos

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	"github.com/siderolabs/talos/pkg/machinery/api/storage"
	"github.com/siderolabs/talos/pkg/machinery/client"
)

// ErrForeignConfig means a node runs a configuration that is not ours: it
// demands client certificates (so it is configured) and its own certificate
// is not signed by our cluster's CA. Between the pivot's reboot and our
// insecure apply, anyone who reaches :50000 first can configure a node in
// maintenance mode; this is what that looks like from here.
var ErrForeignConfig = errors.New("and it is not ours (its certificate is not signed by this cluster's CA): someone else may have configured it first while it waited in maintenance mode (a possible hijack)")

// identity is what one TLS handshake tells about a node without trusting it.
type identity struct {
	asksClientCert bool
	chain          []*x509.Certificate
}

// peek handshakes with addr without verifying it, noting whether the node
// asks for a client certificate (only a configured node does) and which
// certificate it presents.
func (c *Client) peek(ctx context.Context, addr string) (identity, error) {
	conn, err := c.dial(ctx, addr)
	if err != nil {
		return identity{}, err
	}
	defer conn.Close()
	var id identity
	host, _, _ := net.SplitHostPort(addr)
	cfg := insecureTLS()
	cfg.ServerName = host
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		id.asksClientCert = true
		return &tls.Certificate{}, nil // none: we only look
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return id, err
	}
	id.chain = tc.ConnectionState().PeerCertificates
	_ = tc.Close()
	return id, nil
}

// foreign reports whether the node at ip is configured by someone else:
// with roots == nil (we have applied nothing yet) any configured node is.
func (c *Client) foreign(ctx context.Context, ip string, roots *x509.CertPool) bool {
	id, err := c.peek(ctx, apidAddr(ip))
	if err != nil || !id.asksClientCert || len(id.chain) == 0 {
		return false
	}
	if roots == nil {
		return true
	}
	inter := x509.NewCertPool()
	for _, crt := range id.chain[1:] {
		inter.AddCert(crt)
	}
	_, verr := id.chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return verr != nil
}

// WipeConfigVolume wipes the volume the install left the machine config on
// and drops its partition, once the node has stored its config on STATE
// (it never reads the volume again). Wiping what is already gone succeeds.
func (c *Client) WipeConfigVolume(ctx context.Context, ip string, talosconfig []byte, device string) error {
	what := fmt.Sprintf("wipe the config volume %s on %s", device, ip)
	return c.secureCall(ctx, ip, talosconfig, func(actx context.Context, cl *client.Client) error {
		err := cl.BlockDeviceWipe(actx, &storage.BlockDeviceWipeRequest{Devices: []*storage.BlockDeviceWipeDescriptor{{
			Device: device, Method: storage.BlockDeviceWipeDescriptor_FAST, DropPartition: true,
		}}})
		if err == nil {
			return nil
		}
		if errors.Is(grpcErr(what, err), ErrNotFound) {
			return nil
		}
		return grpcErr(what, err)
	})
}
