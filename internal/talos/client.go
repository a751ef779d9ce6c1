// Package talos drives a Talos node through provisioning with the official
// machinery client — maintenance detection, insecure apply, mTLS, bootstrap,
// service health, lockdown — and provides Node, an emulated Talos node that
// speaks the same gRPC Machine API over real TLS/mTLS for tests and
// `provision --sandbox`.
package talos

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/client"
	clientconfig "github.com/siderolabs/talos/pkg/machinery/client/config"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

// DefaultServices are the services a fresh control plane must have Running
// and healthy before the cluster is usable.
func DefaultServices() []string {
	return []string{ServiceEtcd, ServiceKubelet, ServiceAPID, ServiceTrustd}
}

var (
	// ErrNotFound is what a NotFound answer from the node maps to.
	ErrNotFound = errors.New("not found")
	// ErrStillMaintenance means the node came back from the reboot in
	// maintenance mode: it did not take the configuration.
	ErrStillMaintenance = errors.New("node is in maintenance mode: the configuration was not applied")
	// ErrNotMaintenance means the node already runs a configuration (it
	// demands a client certificate or answers Version without one).
	ErrNotMaintenance = errors.New("node is not in maintenance mode: it already runs a configuration")
)

// Dialer opens a TCP connection to addr ("<ip>:<port>"). The sandbox uses it
// to map a server's public address to an emulator listener.
type Dialer func(ctx context.Context, addr string) (net.Conn, error)

// Options tune a Client. The zero value talks to the real network.
type Options struct {
	// Dialer replaces the network dial; nil dials TCP directly.
	Dialer Dialer
	// AttemptTimeout bounds one RPC or probe (a hanging node must not eat
	// the whole deadline of a wait). Default 10s.
	AttemptTimeout time.Duration
	// RetryInitial is the first backoff of single-call retries (default 200ms).
	RetryInitial time.Duration
	// RetryBudget bounds single-call retries when the caller's context has
	// no deadline (see retry.Policy.Budget); zero means no bound.
	RetryBudget time.Duration
	// OnRetry is told about retries of single calls (ApplyInsecure,
	// ApplySecure, Kubeconfig); wait methods report through their
	// wait.Options.
	OnRetry func(retry.Attempt)
	// DialOpts are extra gRPC dial options (e.g. interceptors that count calls).
	DialOpts []grpc.DialOption
}

// Client drives Talos nodes. It keeps no connection between calls: every
// attempt dials afresh, so a node that rebooted is seen at once instead of
// after gRPC's reconnect backoff.
type Client struct {
	opts Options
}

// New returns a Client.
func New(opts Options) *Client {
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 10 * time.Second
	}
	return &Client{opts: opts}
}

func apidAddr(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(ApidPort)) }

func (c *Client) dial(ctx context.Context, addr string) (net.Conn, error) {
	if c.opts.Dialer != nil {
		return c.opts.Dialer(ctx, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

func (c *Client) policy() retry.Policy {
	return retry.Policy{Initial: c.opts.RetryInitial, OnRetry: c.opts.OnRetry, Budget: c.opts.RetryBudget}
}

func (c *Client) attempt(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opts.AttemptTimeout)
}

func (c *Client) dialOptions() []grpc.DialOption {
	return append([]grpc.DialOption{
		grpc.WithContextDialer(c.dial),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: c.opts.AttemptTimeout,
		}),
	}, c.opts.DialOpts...)
}

// insecureTLS is for maintenance mode only: the node has no identity yet and
// serves a self-signed certificate. Still TLS — never plaintext.
func insecureTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}} //nolint:gosec // maintenance mode has no verifiable identity
}

func (c *Client) insecureClient(ctx context.Context, ip string) (*client.Client, error) {
	cl, err := client.New(ctx,
		client.WithEndpoints(apidAddr(ip)),
		client.WithTLSConfig(insecureTLS()),
		client.WithGRPCDialOptions(c.dialOptions()...),
	)
	if err != nil {
		return nil, retry.Permanent(fmt.Errorf("create insecure Talos client for %s: %w", ip, err))
	}
	return cl, nil
}

// mtls holds what a talosconfig gives: the client config and the TLS
// settings it implies (for pre-flight handshakes).
type mtls struct {
	cfg *clientconfig.Config
	tls *tls.Config
}

// parseTalosconfig reads a talosconfig. Its errors never quote the input:
// it carries the admin key.
func parseTalosconfig(raw []byte, ip string) (*mtls, error) {
	cfg, err := clientconfig.FromBytes(raw)
	if err != nil {
		return nil, retry.Permanent(errors.New("parse talosconfig: not a valid talosconfig document"))
	}
	ctxCfg, ok := cfg.Contexts[cfg.Context]
	if !ok || ctxCfg == nil {
		return nil, retry.Permanent(fmt.Errorf("parse talosconfig: context %q not found", cfg.Context))
	}
	caPEM, err := base64.StdEncoding.DecodeString(ctxCfg.CA)
	if err != nil {
		return nil, retry.Permanent(errors.New("parse talosconfig: CA is not valid base64"))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, retry.Permanent(errors.New("parse talosconfig: no CA certificate"))
	}
	crt, err := client.CertificateFromConfigContext(ctxCfg)
	if err != nil || crt == nil {
		return nil, retry.Permanent(errors.New("parse talosconfig: no usable client certificate and key"))
	}
	return &mtls{cfg: cfg, tls: &tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{*crt},
		ServerName:   ip,
		NextProtos:   []string{"h2"},
		MinVersion:   tls.VersionTLS12,
	}}, nil
}

func (c *Client) secureClient(ctx context.Context, ip string, m *mtls) (*client.Client, error) {
	cl, err := client.New(ctx,
		client.WithConfig(m.cfg),
		client.WithEndpoints(apidAddr(ip)),
		client.WithGRPCDialOptions(c.dialOptions()...),
	)
	if err != nil {
		return nil, retry.Permanent(fmt.Errorf("create Talos client for %s: %w", ip, err))
	}
	return cl, nil
}

// secureCall runs fn against the node at ip over mTLS with the
// talosconfig's identity, under the retry policy: each attempt gets its own
// deadline and connection, and fn's transient errors are retried until ctx
// ends.
func (c *Client) secureCall(ctx context.Context, ip string, talosconfig []byte, fn func(ctx context.Context, cl *client.Client) error) error {
	m, err := parseTalosconfig(talosconfig, ip)
	if err != nil {
		return err
	}
	return c.policy().Do(ctx, func(ctx context.Context) error {
		actx, cancel := c.attempt(ctx)
		defer cancel()
		cl, err := c.secureClient(actx, ip, m)
		if err != nil {
			return err
		}
		defer cl.Close()
		return fn(actx, cl)
	})
}

// handshake dials addr and completes a TLS handshake: the typed errors it
// returns (refused, timeout, untrusted certificate) say more than gRPC's.
func (c *Client) handshake(ctx context.Context, addr string, cfg *tls.Config) error {
	conn, err := c.dial(ctx, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	host, _, _ := net.SplitHostPort(addr)
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	return tc.Close()
}

// reachState names why a handshake failed, for progress events.
func reachState(err error) string {
	var ne net.Error
	var cve *tls.CertificateVerificationError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "unreachable (connection refused)"
	case errors.As(err, &cve):
		return "untrusted certificate"
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "unreachable (timeout)"
	default:
		return "unreachable"
	}
}

// grpcErr wraps a gRPC error once with what was being done, classified for
// the retry loops, NotFound mapped to ErrNotFound.
func grpcErr(what string, err error) error {
	st, _ := status.FromError(err)
	switch {
	case st.Code() == codes.NotFound:
		return retry.Permanent(fmt.Errorf("%s: %w: %s", what, ErrNotFound, st.Message()))
	case retry.GRPCTransient(st.Code()):
		return retry.Transient(fmt.Errorf("%s: %w", what, err), 0)
	default:
		return retry.Permanent(fmt.Errorf("%s: %w", what, err))
	}
}

// WaitMaintenance waits until the node at ip answers the Talos API in
// maintenance mode: a TLS handshake (self-signed, not verified) followed by
// Version answering Unimplemented. Progress states: "unreachable (...)",
// "maintenance".
func (c *Client) WaitMaintenance(ctx context.Context, ip string, opts wait.Options) error {
	what := fmt.Sprintf("Talos maintenance mode on %s", apidAddr(ip))
	return wait.Until(ctx, what, opts, func(ctx context.Context) (bool, string, error) {
		actx, cancel := c.attempt(ctx)
		defer cancel()
		if err := c.handshake(actx, apidAddr(ip), insecureTLS()); err != nil {
			return false, reachState(err), nil
		}
		cl, err := c.insecureClient(actx, ip)
		if err != nil {
			return false, "", err
		}
		defer cl.Close()
		_, err = cl.Version(actx)
		switch code := status.Code(err); {
		case code == codes.Unimplemented:
			return true, "maintenance", nil
		case err == nil:
			return false, "", retry.Permanent(fmt.Errorf("probe %s: %w (Version answered without a client certificate)", ip, ErrNotMaintenance))
		case requiresClientCert(err):
			// We have applied nothing yet: whoever configured it, it was
			// not this run.
			if c.foreign(actx, ip, nil) {
				return false, "", retry.Permanent(fmt.Errorf("probe %s: %w: %w", ip, ErrNotMaintenance, ErrForeignConfig))
			}
			return false, "", retry.Permanent(fmt.Errorf("probe %s: %w", ip, ErrNotMaintenance))
		default:
			return false, "", grpcErr(fmt.Sprintf("probe Talos API on %s", ip), err)
		}
	})
}

// requiresClientCert spots a configured node refusing our certificate-less
// connection; TLS 1.3 reports that only as an alert after the handshake.
func requiresClientCert(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "certificate required") || strings.Contains(msg, "bad certificate")
}

// ApplyInsecure applies cfg to a node in maintenance mode (mode REBOOT). The
// node reboots right after answering; if the answer is lost and the node is
// then found down, the apply is taken as done (WaitMTLS confirms).
func (c *Client) ApplyInsecure(ctx context.Context, ip string, cfg []byte) error {
	ambiguous := false
	err := c.policy().Do(ctx, func(ctx context.Context) error {
		actx, cancel := c.attempt(ctx)
		defer cancel()
		if err := c.handshake(actx, apidAddr(ip), insecureTLS()); err != nil {
			if ambiguous && errors.Is(err, syscall.ECONNREFUSED) {
				return nil // went down to reboot into the config
			}
			return retry.Transient(fmt.Errorf("reach %s: %s", ip, reachState(err)), 0)
		}
		cl, err := c.insecureClient(actx, ip)
		if err != nil {
			return err
		}
		defer cl.Close()
		_, err = cl.ApplyConfiguration(actx, &machine.ApplyConfigurationRequest{
			Data: cfg,
			Mode: machine.ApplyConfigurationRequest_REBOOT,
		})
		if err == nil {
			return nil
		}
		if ambiguous && c.wantsClientCert(actx, ip) {
			// An earlier attempt's answer was lost, and the node has
			// rebooted into a config since: ours, unless WaitMTLS
			// finds otherwise. (The retried apply itself may only see a
			// broken pipe: the refusal arrives while the config is
			// still being written.)
			return nil
		}
		if code := status.Code(err); code == codes.Unavailable || code == codes.DeadlineExceeded {
			ambiguous = true
		}
		return grpcErr(fmt.Sprintf("apply configuration to %s (maintenance mode)", ip), err)
	})
	return err
}

// wantsClientCert says whether the node at ip now refuses a connection
// without a client certificate: it left maintenance mode for a config.
func (c *Client) wantsClientCert(ctx context.Context, ip string) bool {
	cl, err := c.insecureClient(ctx, ip)
	if err != nil {
		return false
	}
	defer cl.Close()
	_, err = cl.Version(ctx)
	return err != nil && requiresClientCert(err)
}

// StateStillMaintenance is what WaitMTLS reports while the node still
// answers in maintenance mode after the apply.
const StateStillMaintenance = "still in maintenance mode (the apply has not taken effect yet)"

// WaitMTLS waits until the rebooted node answers Version over mTLS with the
// talosconfig's identity.
//
// Real Talos answers the insecure apply before it tears maintenance mode
// down, so for a while afterwards the node still presents its maintenance
// certificate: that is "not yet", not a rejected config. Only a node that
// went down and came back in maintenance mode (the reboot lost the config),
// or one still in maintenance mode when ctx ends, fails with
// ErrStillMaintenance.
func (c *Client) WaitMTLS(ctx context.Context, ip string, talosconfig []byte, opts wait.Options) error {
	m, err := parseTalosconfig(talosconfig, ip)
	if err != nil {
		return err
	}
	start := time.Now()
	wentDown, lingering := false, false
	what := fmt.Sprintf("Talos API over mTLS on %s", apidAddr(ip))
	err = wait.Until(ctx, what, opts, func(ctx context.Context) (bool, string, error) {
		actx, cancel := c.attempt(ctx)
		defer cancel()
		if err := c.handshake(actx, apidAddr(ip), m.tls); err != nil {
			var cve *tls.CertificateVerificationError
			if !errors.As(err, &cve) {
				// Refused: down (to reboot), or on its way back. A probe
				// that only timed out proves nothing either way (a loaded
				// network or machine), so it changes neither.
				if errors.Is(err, syscall.ECONNREFUSED) {
					lingering = false
					if ctx.Err() == nil {
						wentDown = true
					}
				}
				return false, reachState(err), nil
			}
			if c.inMaintenance(actx, ip) {
				if wentDown {
					return false, "", retry.Permanent(fmt.Errorf("wait for mTLS on %s: it went down to reboot and came back in maintenance mode: %w", ip, ErrStillMaintenance))
				}
				lingering = true
				return false, StateStillMaintenance, nil
			}
			if c.foreign(actx, ip, m.tls.RootCAs) {
				return false, "", retry.Permanent(fmt.Errorf("wait for mTLS on %s: %w: %w", ip, ErrNotMaintenance, ErrForeignConfig))
			}
			// A certificate we do not trust that could not be confirmed as
			// the maintenance one (the probe was cut short): nothing learnt.
			return false, reachState(err), nil
		}
		lingering = false
		cl, err := c.secureClient(actx, ip, m)
		if err != nil {
			return false, "", err
		}
		defer cl.Close()
		resp, err := cl.Version(actx)
		if err != nil {
			return false, "", grpcErr(fmt.Sprintf("Version over mTLS on %s", ip), err)
		}
		state := "mTLS up"
		if msgs := resp.GetMessages(); len(msgs) > 0 && msgs[0].GetVersion().GetTag() != "" {
			state += " (Talos " + msgs[0].GetVersion().GetTag() + ")"
		}
		return true, state, nil
	})
	if err != nil && lingering && errors.Is(err, wait.ErrTimeout) {
		return fmt.Errorf("wait for mTLS on %s: it still answered in maintenance mode %s after the apply and never went down to reboot: %w (%w)",
			ip, time.Since(start).Round(time.Second), ErrStillMaintenance, err)
	}
	return err
}

func (c *Client) inMaintenance(ctx context.Context, ip string) bool {
	cl, err := c.insecureClient(ctx, ip)
	if err != nil {
		return false
	}
	defer cl.Close()
	_, err = cl.Version(ctx)
	return status.Code(err) == codes.Unimplemented
}

// Bootstrap bootstraps etcd on the node, exactly once: FailedPrecondition
// (etcd not ready yet) and transient errors are retried until ctx ends;
// AlreadyExists means an earlier call (maybe one whose answer was lost) did it.
func (c *Client) Bootstrap(ctx context.Context, ip string, talosconfig []byte, opts wait.Options) error {
	m, err := parseTalosconfig(talosconfig, ip)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("etcd bootstrap on %s", ip)
	return wait.Until(ctx, what, opts, func(ctx context.Context) (bool, string, error) {
		actx, cancel := c.attempt(ctx)
		defer cancel()
		cl, err := c.secureClient(actx, ip, m)
		if err != nil {
			return false, "", err
		}
		defer cl.Close()
		err = cl.Bootstrap(actx, &machine.BootstrapRequest{})
		switch status.Code(err) {
		case codes.OK:
			return true, "bootstrapped", nil
		case codes.AlreadyExists:
			return true, "already bootstrapped", nil
		case codes.FailedPrecondition:
			return false, "etcd not ready for bootstrap", nil
		default:
			return false, "", grpcErr(fmt.Sprintf("bootstrap etcd on %s", ip), err)
		}
	})
}

// ApplySecure re-applies cfg over mTLS without a reboot — the lockdown. The
// new firewall may cut this very connection before the answer arrives; then
// the node is probed: if it now refuses us, it took the config (applied
// true); if it still answers, the apply is retried. A node that was not
// reachable before the apply is an error: losing it afterwards would prove
// nothing. The caller still confirms the lockdown with ProbePorts.
func (c *Client) ApplySecure(ctx context.Context, ip string, talosconfig []byte, cfg []byte) (applied bool, err error) {
	m, err := parseTalosconfig(talosconfig, ip)
	if err != nil {
		return false, err
	}
	// The node must be reachable before the apply: afterwards, losing it is
	// the evidence that the new firewall is in force.
	pctx, cancel := c.attempt(ctx)
	err = c.handshake(pctx, apidAddr(ip), m.tls)
	cancel()
	if err != nil {
		return false, retry.Transient(fmt.Errorf("reach %s before lockdown: %s", ip, reachState(err)), 0)
	}
	err = c.policy().Do(ctx, func(ctx context.Context) error {
		actx, cancel := c.attempt(ctx)
		defer cancel()
		cl, err := c.secureClient(actx, ip, m)
		if err != nil {
			return err
		}
		defer cl.Close()
		_, err = cl.ApplyConfiguration(actx, &machine.ApplyConfigurationRequest{
			Data: cfg,
			Mode: machine.ApplyConfigurationRequest_AUTO,
		})
		if err == nil {
			applied = true
			return nil
		}
		if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
			return grpcErr(fmt.Sprintf("apply configuration to %s", ip), err)
		}
		// Cut off mid-call: find out whether the firewall now shuts us out.
		pctx, pcancel := c.attempt(ctx)
		defer pcancel()
		if herr := c.handshake(pctx, apidAddr(ip), m.tls); herr != nil && ctx.Err() == nil {
			applied = true
			return nil
		}
		return grpcErr(fmt.Sprintf("apply configuration to %s", ip), err)
	})
	if err != nil {
		return applied, err
	}
	return applied, nil
}

// ProbePorts reports, for each TCP port, whether it is reachable from here.
// The Talos API (50000) and kube-apiserver (6443) ports must also complete a
// TLS handshake: a TCP accept alone can come from a middlebox. Each probe is
// bounded by AttemptTimeout.
func (c *Client) ProbePorts(ctx context.Context, ip string, ports []int) (map[int]bool, error) {
	type result struct {
		port int
		open bool
	}
	results := make(chan result, len(ports))
	for _, port := range ports {
		go func() {
			actx, cancel := c.attempt(ctx)
			defer cancel()
			addr := net.JoinHostPort(ip, strconv.Itoa(port))
			var err error
			switch port {
			case ApidPort:
				err = c.handshake(actx, addr, insecureTLS())
			case KubeAPIPort:
				// kube-apiserver speaks HTTP/2 and HTTP/1.1; offering only
				// h2 makes a server that does not pick it abort the
				// handshake, and an open port would pass for closed.
				cfg := insecureTLS()
				cfg.NextProtos = []string{"h2", "http/1.1"}
				err = c.handshake(actx, addr, cfg)
			default:
				var conn net.Conn
				if conn, err = c.dial(actx, addr); err == nil {
					conn.Close()
				}
			}
			results <- result{port: port, open: err == nil}
		}()
	}
	out := make(map[int]bool, len(ports))
	for range ports {
		r := <-results
		out[r.port] = r.open
	}
	if err := ctx.Err(); err != nil {
		return out, fmt.Errorf("probe ports of %s: %w", ip, err)
	}
	return out, nil
}
