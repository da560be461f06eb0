package serve

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/spf13/cobra"
)

// addDevFlags registers the flags of `serve --dev` (the development broker).
func addDevFlags(_ *cobra.Command, _ *Options) {}

// setupDev starts the development broker for `serve --dev` on the same
// listener: it mounts the broker's handlers under /realms/ on mux and returns
// the issuer, http://<addr>/realms/pbench-server. It runs before the
// validating server is built, until ctx is done.
func setupDev(_ context.Context, _ *Options, _ net.Addr, _ *http.ServeMux) (issuer string, err error) {
	return "", errors.New("--dev is not available yet")
}
