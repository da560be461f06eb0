package cmdutil

import (
	"errors"
	"fmt"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/internal/errmark"
	"github.com/distributed-system-analysis/pbench-auth/pkg/discovery"
	"github.com/distributed-system-analysis/pbench-auth/pkg/login"
)

// The command layer gives the domain packages' kinds of error their exit
// codes, however deeply they are wrapped.
func TestExitCodeOfDomainErrors(t *testing.T) {
	wrap := func(kind error) error {
		return fmt.Errorf("login: %w", errmark.With(kind, errors.New("cause")))
	}
	for _, tt := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, ExitOK},
		{"plain", errors.New("boom"), ExitFailure},
		{"unreachable", wrap(discovery.ErrUnreachable), ExitNetwork},
		{"invalid input", wrap(discovery.ErrInvalidInput), ExitUsage},
		{"listen address", wrap(login.ErrInvalidListenAddress), ExitUsage},
		{"interrupted", fmt.Errorf("x: %w", login.ErrInterrupted), ExitCancelled},
		{"usage", Usagef("bad flag"), ExitUsage},
		{"explicit code wins", WithExitCode(ExitHTTPServer, wrap(discovery.ErrUnreachable)), ExitHTTPServer},
		// An unreachable broker stays exit 5 when a command calls the whole
		// step a usage problem (as an ExitError inside a UsageError did).
		{"unreachable inside usage", &UsageError{Err: wrap(discovery.ErrUnreachable)}, ExitNetwork},
		{"usage inside invalid input", errmark.With(discovery.ErrInvalidInput, Usagef("x")), ExitUsage},
	} {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("%s: ExitCode(%v) = %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
}
