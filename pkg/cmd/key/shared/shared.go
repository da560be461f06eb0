// Package shared is what the `key` subcommands share: a client of the
// server's /api/v1/key endpoints that authenticates like `call` does.
package shared

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/pkg/apiclient"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/server/apikey"
)

// Client calls a Pbench server's key endpoints.
type Client struct {
	HTTP   *http.Client
	Server string // the normalised server URL
}

// NewClient returns a client of the server that cf names, sending the API
// key of $PBENCH_API_KEY when set, else the profile's token (refreshed).
func NewClient(f *cmdutil.Factory, cf cmdutil.ClientFlags) (*Client, error) {
	server, err := f.Server(cf.Server)
	if err != nil {
		return nil, err
	}
	hc, err := f.HTTPClient(server)
	if err != nil {
		return nil, err
	}
	creds, err := f.Credentials(cf.TokenStore, server)
	if err != nil {
		return nil, err
	}
	return &Client{HTTP: apiclient.NewClient(hc, creds, server, f.Tracef), Server: server}, nil
}

// Created is the server's answer to POST /api/v1/key (Pbench's shape): the
// server's own type, so the two cannot drift apart.
type Created = apikey.Created

// Info is one key of GET /api/v1/key: never the key itself.
type Info = apikey.Info

// maxAnswer bounds what is read of an answer.
const maxAnswer = 8 << 20

// Do sends method path (with its query) and decodes a 2xx JSON answer into
// out (unless nil); raw, when not nil, receives the answer's bytes. Other
// answers become errors carrying the server's message and the exit code of
// `call` (6 for 4xx, 7 for 5xx, 5 when unreachable).
func (c *Client) Do(ctx context.Context, method, path string, out any, raw *[]byte) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.Server+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		var ee *cmdutil.ExitError
		if errors.As(err, &ee) {
			return err
		}
		return cmdutil.WithExitCode(cmdutil.ExitNetwork, fmt.Errorf("%s %s: %w", method, c.Server+path, err))
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return cmdutil.WithExitCode(cmdutil.ExitNetwork, fmt.Errorf("%s %s: read the answer: %w", method, path, err))
	}
	if resp.StatusCode/100 != 2 {
		var m struct {
			Message string `json:"message"`
		}
		msg := http.StatusText(resp.StatusCode)
		if json.Unmarshal(body, &m) == nil && m.Message != "" {
			msg = m.Message
		}
		code := cmdutil.ExitHTTPClient
		if resp.StatusCode >= 500 {
			code = cmdutil.ExitHTTPServer
		}
		return cmdutil.WithExitCode(code, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, msg))
	}
	if raw != nil {
		*raw = body
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("%s %s: the answer is not the expected JSON: %w", method, path, err)
		}
	}
	return nil
}
