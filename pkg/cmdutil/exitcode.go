// Package cmdutil holds what every command shares: the dependency factory,
// the IO streams, and the typed exit codes that scripts can rely on.
package cmdutil

import (
	"errors"
	"fmt"

	"github.com/distributed-system-analysis/pbench-auth/pkg/discovery"
	"github.com/distributed-system-analysis/pbench-auth/pkg/login"
)

// Exit codes. They are part of the CLI's contract (documented in docs/) and
// must never be renumbered.
const (
	ExitOK             = 0 // success
	ExitFailure        = 1 // any failure without a more specific code
	ExitUsage          = 2 // bad flags, arguments or configuration
	ExitNotLoggedIn    = 3 // no tokens stored for the profile
	ExitSessionExpired = 4 // the refresh token was refused: log in again
	ExitNetwork        = 5 // the server or broker could not be reached
	ExitHTTPClient     = 6 // the server answered 4xx (401, 403, 404, ...)
	ExitHTTPServer     = 7 // the server answered 5xx
	ExitCancelled      = 130
)

// ExitError carries an exit code along with the error that caused it. The
// message printed to the user is Err's.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// WithExitCode wraps err so that the process exits with code. A nil err stays nil.
func WithExitCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &ExitError{Code: code, Err: err}
}

// ErrSilent asks main to exit non-zero without printing anything more: the
// command has already told the user what happened.
var ErrSilent = errors.New("silent error")

// kindExitCodes maps the kinds of error that the domain packages mark
// (errors.Is) to exit codes: the domain packages know nothing of exit codes.
// The kinds before a UsageError win over it, those after lose to it.
var kindExitCodes = []struct {
	kind error
	code int
}{
	{discovery.ErrUnreachable, ExitNetwork},
	{login.ErrInterrupted, ExitCancelled},
	{nil, ExitUsage}, // *UsageError
	{discovery.ErrInvalidInput, ExitUsage},
	{login.ErrInvalidListenAddress, ExitUsage},
}

// ExitCode maps an error returned by a command to the process exit code: an
// ExitError's code, else the code of the first kind of error in
// kindExitCodes that err is, else ExitFailure.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	for _, k := range kindExitCodes {
		var ue *UsageError
		if (k.kind == nil && errors.As(err, &ue)) || (k.kind != nil && errors.Is(err, k.kind)) {
			return k.code
		}
	}
	return ExitFailure
}

// UsageError reports a mistake in flags, arguments or configuration.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef builds a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}
