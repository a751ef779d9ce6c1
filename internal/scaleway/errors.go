package scaleway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	scwerrors "github.com/scaleway/scaleway-sdk-go/errors"
	"github.com/scaleway/scaleway-sdk-go/scw"

	"github.com/rawkode/rawkode-cloud/internal/retry"
)

var (
	// ErrNotFound means the API answered 404: the resource does not exist
	// (any more). Undo steps treat it as success.
	ErrNotFound = errors.New("not found")
	// ErrNoSSHKeys means the project has no enabled SSH key; the Elastic
	// Metal OS install requires at least one.
	ErrNoSSHKeys = errors.New("no SSH key in the project: the Elastic Metal OS install requires one (add it under IAM > SSH keys)")
	// ErrIncompatible means the offer or OS cannot run the cloud-init pivot
	// (missing, out of stock, or without cloud-init support).
	ErrIncompatible = errors.New("offer/OS cannot run the cloud-init pivot")
	// ErrMaybeCreated means CreateServer failed in a way that does not prove
	// nothing was ordered; look for the server by its tags before retrying.
	ErrMaybeCreated = errors.New("the server may have been ordered anyway")
	// ErrServerFailed means the server or its OS install reached a state it
	// never leaves on its own (error, out_of_stock, locked, install error).
	ErrServerFailed = errors.New("server cannot become ready")
	// ErrAuth means the API refused the credentials or their permissions.
	ErrAuth = errors.New("credentials refused")
)

// cloudInitUnsupported is the message of Scaleway's HTTP 503 for user data
// on an offer without cloud-init. Despite the status it never succeeds.
const cloudInitUnsupported = "cloud-init is not supported on this offer"

// classify maps an SDK error onto the retry classes and the package
// sentinels. ra carries the Retry-After of the failed response, if any.
func classify(err error, ra *retryAfter) error {
	if err == nil {
		return nil
	}
	after := ra.get()
	var re *scw.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.StatusCode == http.StatusNotFound:
			return retry.Permanent(fmt.Errorf("%w: %w", ErrNotFound, err))
		case re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden:
			return retry.Permanent(fmt.Errorf("%w: %w", ErrAuth, err))
		case strings.Contains(re.Message, cloudInitUnsupported):
			return retry.Permanent(fmt.Errorf("%w: %w", ErrIncompatible, err))
		case retry.HTTPTransient(re.StatusCode):
			return retry.Transient(err, after)
		default:
			return retry.Permanent(err)
		}
	}
	var (
		notFound  *scw.ResourceNotFoundError
		transient *scw.TransientStateError
		denied    *scw.DeniedAuthenticationError
		perms     *scw.PermissionsDeniedError
	)
	switch {
	case errors.As(err, &notFound):
		return retry.Permanent(fmt.Errorf("%w: %w", ErrNotFound, err))
	case errors.As(err, &transient):
		return retry.Transient(err, after)
	case errors.As(err, &denied), errors.As(err, &perms):
		return retry.Permanent(fmt.Errorf("%w: %w", ErrAuth, err))
	}
	if t, a := retry.Classify(err); t {
		return retry.Transient(err, max(a, after))
	}
	return retry.Permanent(err)
}

// classifyCreate is classify for the one non-idempotent call: only failures
// that prove nothing was ordered stay transient.
func classifyCreate(err error, ra *retryAfter) error {
	if err == nil {
		return nil
	}
	var re *scw.ResponseError
	hasStatus := errors.As(err, &re)
	switch {
	case hasStatus && re.StatusCode == http.StatusTooManyRequests:
		return retry.Transient(err, ra.get())
	case errors.Is(err, syscall.ECONNREFUSED):
		return retry.Transient(err, 0)
	}
	c := classify(err, ra)
	var (
		ue  *url.Error
		sdk *scwerrors.Error
	)
	// Without an answer nothing is proven: the request may have reached the
	// API (url.Error), the answer may have been cut off while it was read
	// (the SDK wraps body errors in its own Error type: the order went
	// through), or the caller gave up (Ctrl-C, a deadline) while the API
	// was still taking the order. A 5xx is no better.
	ambiguous := errors.As(err, &ue) || errors.As(err, &sdk) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		(hasStatus && re.StatusCode >= 500 && !errors.Is(c, ErrIncompatible))
	if ambiguous {
		return retry.Permanent(fmt.Errorf("%w: %w", ErrMaybeCreated, c))
	}
	return retry.Permanent(c)
}

// retryAfter is a per-call slot the transport fills with the Retry-After of
// a 429/503 response, because the SDK's errors drop response headers.
type retryAfter struct{ d time.Duration }

func (r *retryAfter) get() time.Duration {
	if r == nil {
		return 0
	}
	return r.d
}

type retryAfterKey struct{}

func withRetryAfterSlot(ctx context.Context) (context.Context, *retryAfter) {
	ra := &retryAfter{}
	return context.WithValue(ctx, retryAfterKey{}, ra), ra
}

type retryAfterTransport struct{ base http.RoundTripper }

func (t *retryAfterTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return resp, err
	}
	if slot, ok := req.Context().Value(retryAfterKey{}).(*retryAfter); ok {
		slot.d = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return resp, nil
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// withRetryAfter returns a copy of hc (or a default client) whose transport
// records Retry-After.
func withRetryAfter(hc *http.Client) *http.Client {
	var out http.Client
	if hc != nil {
		out = *hc
	} else {
		// Bounds a call even when the caller's context has no deadline.
		out.Timeout = 60 * time.Second
	}
	base := out.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	out.Transport = &retryAfterTransport{base: base}
	return &out
}

// redactErr flattens err into a message without secret; used where the SDK
// quotes its inputs verbatim.
func redactErr(err error, secret string) error {
	if err == nil || secret == "" {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "[REDACTED]"))
}
