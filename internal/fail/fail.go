// Package fail maps the ways a run can end onto the documented exit codes.
// Errors carry their class; main asks ExitCode once, at the very end.
package fail

import (
	"context"
	"errors"
)

// Exit codes, documented in --help and the README.
const (
	OK          = 0   // success
	Failed      = 1   // failed; everything created was removed
	Usage       = 2   // usage or configuration error; nothing was created
	LeftRunning = 3   // verification failed; server deliberately left running for debugging
	Incomplete  = 4   // cleanup incomplete; resources may remain (they are listed)
	Interrupted = 130 // interrupted; everything created was removed
)

// Codes describes every exit code, in order, for help texts and the README.
var Codes = []struct {
	Code int
	Text string
}{
	{OK, "success"},
	{Failed, "failed; everything that was created has been removed again"},
	{Usage, "usage or configuration error, or a service unavailable before anything was ordered; nothing was created"},
	{LeftRunning, "verification failed; the server was deliberately left running for debugging"},
	{Incomplete, "cleanup incomplete; resources may remain (they are listed with the command that removes them)"},
	{Interrupted, "interrupted; everything that was created has been removed again"},
}

// coded is an error with an explicit exit code.
type coded struct {
	err  error
	code int
}

func (c *coded) Error() string { return c.err.Error() }
func (c *coded) Unwrap() error { return c.err }

// WithCode attaches an exit code to err.
func WithCode(err error, code int) error {
	if err == nil {
		return nil
	}
	return &coded{err: err, code: code}
}

// UsageError marks err as a usage or configuration problem (exit 2).
func UsageError(err error) error { return WithCode(err, Usage) }

// unavailable is a service outage found before anything was created.
type unavailable struct{ err error }

func (u *unavailable) Error() string { return "service unavailable: " + u.err.Error() }
func (u *unavailable) Unwrap() error { return u.err }

// Unavailable marks err as an outage of a service the run needs, found
// before anything was created: the exit code is still 2 (nothing exists),
// but the message must not send the user hunting through their settings.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	return WithCode(&unavailable{err: err}, Usage)
}

// IsUnavailable reports whether err is an outage marked by Unavailable.
func IsUnavailable(err error) bool {
	var u *unavailable
	return errors.As(err, &u)
}

// IsUsage reports whether err is a usage or configuration problem.
func IsUsage(err error) bool { return ExitCode(err) == Usage }

// ExitCode returns the exit code for err. The outermost explicit code wins;
// a bare cancellation means the user interrupted us.
func ExitCode(err error) int {
	if err == nil {
		return OK
	}
	var c *coded
	if errors.As(err, &c) {
		return c.code
	}
	if errors.Is(err, context.Canceled) {
		return Interrupted
	}
	return Failed
}
