package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/distributed-system-analysis/pbench-auth/pkg/apiclient"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
)

// shownKeyChars is how much of the API key status shows: "pbench_" and 4
// characters, what the server's key lists show too.
const shownKeyChars = 11

// keyStatus reports on the API key of $PBENCH_API_KEY: the server is asked
// who it is (GET /api/v1/user), so a deleted or expired key shows at once.
func keyStatus(ctx context.Context, opts *Options, server, key string) error {
	st := Status{Server: server, Credential: "api-key", KeyPrefix: key[:min(len(key), shownKeyChars)]}
	if len(key) <= shownKeyChars {
		st.KeyPrefix = "(too short to be a key)"
	}
	idErr := whoIs(ctx, opts, server, key, &st)
	if idErr != nil {
		st.Error = idErr.Error()
	} else {
		st.LoggedIn = true
	}
	if opts.JSON {
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return err
		}
	} else {
		if err := printText(opts.IO.Out, &st, opts.Now()); err != nil {
			return err
		}
		if idErr != nil {
			_, _ = fmt.Fprintln(opts.IO.ErrOut, idErr)
		}
	}
	if idErr != nil {
		return &reported{idErr}
	}
	return nil
}

var errKeyRefused = cmdutil.WithExitCode(cmdutil.ExitSessionExpired, apiclient.ErrAPIKeyRefused)

func whoIs(ctx context.Context, opts *Options, server, key string, st *Status) error {
	hc, err := opts.HTTPClient(server)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/api/v1/user", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := hc.Do(req)
	if err != nil {
		return cmdutil.WithExitCode(cmdutil.ExitNetwork, fmt.Errorf("ask %s who the API key is: %w", server, err))
	}
	defer func() { _ = resp.Body.Close() }()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return errKeyRefused
	case resp.StatusCode >= 500:
		return cmdutil.WithExitCode(cmdutil.ExitHTTPServer, fmt.Errorf("ask %s who the API key is: HTTP %d", server, resp.StatusCode))
	case resp.StatusCode != http.StatusOK:
		return cmdutil.WithExitCode(cmdutil.ExitHTTPClient, fmt.Errorf("ask %s who the API key is: HTTP %d", server, resp.StatusCode))
	}
	var id struct {
		Username string   `json:"username"`
		Email    string   `json:"email"`
		Roles    []string `json:"roles"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&id); err != nil {
		return errors.New("the server's answer to GET /api/v1/user is not the expected JSON")
	}
	st.User, st.Email, st.Roles = id.Username, id.Email, id.Roles
	return nil
}
