package infisical

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	sdkerrors "github.com/infisical/go-sdk/packages/errors"

	"github.com/rawkode/rawkode-cloud/internal/retry"
)

var (
	// ErrNotFound means the project, folder or secret does not exist (HTTP 404).
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized means Infisical refused the credentials or the token
	// (HTTP 401/403): retrying cannot help, fixing the identity can.
	ErrUnauthorized = errors.New("unauthorized")
)

// rateLimitFloor is how long to wait after a 429. The SDK keeps response
// headers to itself, so the server's Retry-After cannot be read; one second
// is Infisical's shortest rate-limit window.
const rateLimitFloor = time.Second

// HTTPError is an error answer from the Infisical API, reduced to what is
// safe to show: the status and the server's message, scrubbed of credentials,
// tokens and secret values.
type HTTPError struct {
	Status  int
	Message string
}

func (e *HTTPError) Error() string {
	text := http.StatusText(e.Status)
	if e.Message == "" {
		return fmt.Sprintf("HTTP %d %s", e.Status, text)
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, text, e.Message)
}

// Is makes errors.Is(err, ErrNotFound) and errors.Is(err, ErrUnauthorized) work.
func (e *HTTPError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
	}
	return false
}

// classify turns an SDK error into one that says whether retrying helps and
// carries no secret. The SDK's own texts are never passed through unscrubbed.
func (c *Client) classify(err error, extra []string) error {
	if err == nil {
		return nil
	}
	var apiErr *sdkerrors.APIError
	if errors.As(err, &apiErr) {
		he := &HTTPError{Status: apiErr.StatusCode, Message: c.scrub(apiErr.ErrorMessage, extra)}
		switch {
		case he.Status == http.StatusTooManyRequests:
			return retry.Transient(he, rateLimitFloor)
		case retry.HTTPTransient(he.Status):
			return retry.Transient(he, 0)
		default:
			return retry.Permanent(he)
		}
	}
	var reqErr *sdkerrors.RequestError
	if errors.As(err, &reqErr) {
		// The transport error is not unwrappable; judge it by its text.
		msg := c.scrub(transportText(reqErr.Error()), extra)
		if permanentTransport(msg) {
			return retry.Permanent(errors.New(msg))
		}
		return retry.Transient(errors.New(msg), 0)
	}
	return retry.Permanent(errors.New(c.scrub(err.Error(), extra)))
}

// transportText strips the SDK's "Op: unable to complete api request [err=…]"
// wrapping down to the transport error.
func transportText(s string) string {
	if _, inner, ok := strings.Cut(s, "[err="); ok {
		return "request failed: " + strings.TrimSuffix(inner, "]")
	}
	return s
}

// permanentTransport recognises transport failures that retrying cannot fix:
// a bad URL or a certificate nobody trusts.
func permanentTransport(msg string) bool {
	for _, s := range []string{"unsupported protocol scheme", "x509:", "tls: ", "certificate"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// scrub replaces every credential, token and given value in s. Very short
// values are left alone: replacing them would mangle the text and hide nothing.
func (c *Client) scrub(s string, extra []string) string {
	for _, v := range append(append([]string(nil), c.sensitive...), extra...) {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "[REDACTED]")
		}
	}
	return s
}

// isAlreadyExists recognises Infisical's answer to creating a secret that
// another writer created since we listed.
func isAlreadyExists(err error) bool {
	var he *HTTPError
	return errors.As(err, &he) && he.Status == http.StatusBadRequest &&
		strings.Contains(he.Message, "already exist")
}
