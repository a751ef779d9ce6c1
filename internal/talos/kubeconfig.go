package talos

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rawkode/rawkode-cloud/internal/retry"
)

// ErrNotBootstrapped means the node refused to hand out a kubeconfig because
// etcd has not been bootstrapped yet (FailedPrecondition).
var ErrNotBootstrapped = errors.New("cluster is not bootstrapped")

// Kubeconfig fetches the cluster's admin kubeconfig from the node over mTLS
// with the talosconfig's identity. Transient failures (Unavailable, rate
// limits, an attempt that got no answer within AttemptTimeout) are retried
// until ctx ends, reported through Options.OnRetry. The returned bytes hold
// the admin client key: callers store them as a secret. Errors never quote
// them.
func (c *Client) Kubeconfig(ctx context.Context, ip string, talosconfig []byte) ([]byte, error) {
	m, err := parseTalosconfig(talosconfig, ip)
	if err != nil {
		return nil, err
	}
	var out []byte
	var last error
	err = c.policy().Do(ctx, func(ctx context.Context) error {
		actx, cancel := c.attempt(ctx)
		defer cancel()
		cl, err := c.secureClient(actx, ip, m)
		if err != nil {
			return err
		}
		defer cl.Close()
		kc, err := cl.Kubeconfig(actx)
		if err != nil || len(kc) == 0 {
			kerr := c.kubeconfigErr(ctx, actx, ip, err)
			if ctx.Err() != nil && last != nil {
				// The deadline cut this attempt short: the previous
				// failure says more about why there is no kubeconfig.
				return last
			}
			last = kerr
			return kerr
		}
		out = kc
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// kubeconfigErr classifies a failed download. The machinery client reads
// the stream through a pipe that turns Canceled/DeadlineExceeded into a
// plain EOF, so a node that hangs until the attempt times out shows up as
// an empty or truncated archive rather than as a gRPC status.
func (c *Client) kubeconfigErr(ctx, actx context.Context, ip string, err error) error {
	what := fmt.Sprintf("fetch kubeconfig from %s", ip)
	if ctx.Err() != nil {
		return fmt.Errorf("%s: no complete answer: %w", what, ctx.Err())
	}
	if actx.Err() != nil {
		return retry.Transient(fmt.Errorf("%s: no complete answer within %s", what, c.opts.AttemptTimeout), 0)
	}
	if err == nil {
		return retry.Permanent(fmt.Errorf("%s: the archive holds no kubeconfig", what))
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		if st.Code() == codes.FailedPrecondition {
			return retry.Permanent(fmt.Errorf("%s: %w: %s", what, ErrNotBootstrapped, st.Message()))
		}
		return grpcErr(what, err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// The stream ended early without a status: the call was cut.
		return retry.Transient(fmt.Errorf("%s: truncated archive: %w", what, err), 0)
	}
	// gzip/tar errors describe the framing, never the content.
	return retry.Permanent(fmt.Errorf("%s: read archive: %w", what, err))
}
