package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	cf "github.com/cloudflare/cloudflare-go/v6"
	"github.com/cloudflare/cloudflare-go/v6/dns"
	"github.com/cloudflare/cloudflare-go/v6/option"
	"github.com/cloudflare/cloudflare-go/v6/packages/pagination"

	"github.com/rawkode/rawkode-cloud/internal/retry"
)

type paginated = pagination.V4PagePaginationArray[dns.RecordResponse]

// APIError is a refusal from the Cloudflare API: the HTTP status and the
// error list of the v4 envelope. It deliberately keeps nothing of the
// request, whose headers carry the token.
type APIError struct {
	StatusCode int
	Errors     []ErrorDetail
	// RetryAfter is the server's requested delay (429/503), if any.
	RetryAfter time.Duration
}

// ErrorDetail is one entry of the envelope's "errors" list.
type ErrorDetail struct {
	Code    int
	Message string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cloudflare API: HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	for i, d := range e.Errors {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s%s (code %d)", sep, d.Message, d.Code)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotFound) hold for a missing record. A 404
// about an unroutable zone (7000/7003) is a configuration error instead, and
// must not let an undo "succeed" against the wrong zone.
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && e.StatusCode == http.StatusNotFound && !e.hasCode(7000) && !e.hasCode(7003)
}

func (e *APIError) hasCode(code int) bool {
	for _, d := range e.Errors {
		if d.Code == code {
			return true
		}
	}
	return false
}

// exchange remembers the last HTTP response of one attempt, so an error body
// the SDK cannot decode (an HTML 502 from a proxy) is still judged by status.
type exchange struct {
	status int
	header http.Header
}

func (x *exchange) option() option.RequestOption {
	return option.WithMiddleware(func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		res, err := next(req)
		if res != nil {
			x.status, x.header = res.StatusCode, res.Header.Clone()
		}
		return res, err
	})
}

// sdkCall is one SDK call; opts must be passed on to the SDK method.
type sdkCall func(ctx context.Context, opts ...option.RequestOption) error

// call runs fn under the retry policy, each attempt bounded by
// RequestTimeout, and classifies what fails.
func (c *Client) call(ctx context.Context, fn sdkCall) error {
	var last error
	return c.cfg.Retry.Do(ctx, func(ctx context.Context) error {
		attemptCtx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
		var x exchange
		err := c.classify(ctx, fn(attemptCtx, x.option()), &x)
		if err != nil && ctx.Err() != nil && last != nil {
			// The caller's deadline cut a retry short: what the API said
			// before ("HTTP 503 …") explains the failure, the deadline does not.
			return last
		}
		last = err
		return err
	})
}

func (c *Client) classify(parent context.Context, err error, x *exchange) error {
	if err == nil {
		return nil
	}
	var sdkErr *cf.Error
	switch {
	case errors.As(err, &sdkErr):
		apiErr := &APIError{StatusCode: sdkErr.StatusCode}
		for _, d := range sdkErr.Errors {
			apiErr.Errors = append(apiErr.Errors, ErrorDetail{Code: int(d.Code), Message: d.Message})
		}
		if sdkErr.Response != nil {
			apiErr.RetryAfter = parseRetryAfter(sdkErr.Response.Header.Get("Retry-After"))
		}
		return mark(apiErr)
	case x.status >= 400:
		return mark(&APIError{StatusCode: x.status, RetryAfter: parseRetryAfter(x.header.Get("Retry-After"))})
	case errors.Is(err, context.DeadlineExceeded) && parent.Err() == nil:
		// Only this attempt timed out; the caller still has time to retry.
		return retry.Transient(fmt.Errorf("no answer within %s: %w", c.cfg.RequestTimeout, err), 0)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer before the deadline: %w", err)
	}
	return err // network errors and already-classified errors judge themselves
}

func mark(e *APIError) error {
	if retry.HTTPTransient(e.StatusCode) {
		return retry.Transient(e, e.RetryAfter)
	}
	return retry.Permanent(e)
}

// parseRetryAfter reads delta-seconds or an HTTP date; 0 when absent or invalid.
func parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
