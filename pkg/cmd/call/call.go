// Package call implements `pbench-auth call`: one HTTP request to the Pbench
// server with the profile's token, for people and scripts.
package call

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/distributed-system-analysis/pbench-auth/internal/netutil"
	"github.com/distributed-system-analysis/pbench-auth/internal/redact"
	"github.com/distributed-system-analysis/pbench-auth/pkg/apiclient"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/session"
)

// Options are the parsed flags of `call` and what it needs to run.
type Options struct {
	IO         *cmdutil.IOStreams
	HTTPClient func(profile string) (*http.Client, error)
	Server     func(flag string) (string, error)
	Sessions   func(kind, profile string) (*session.Manager, error)
	// APIKey is $PBENCH_API_KEY: when set, it is sent instead of the token.
	APIKey func() string
	Trace  func(format string, args ...any)

	Flags     cmdutil.ClientFlags
	Target    string   // PATH or URL
	Method    string   // -X; "" = GET, or POST with data
	Data      string   // -d: STRING, @FILE or @-
	Headers   []string // -H 'K: V'
	Include   bool     // -i
	Anonymous bool     // --anonymous
}

// NewCmd builds `call`. runF replaces the behaviour in tests.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: f.IO, HTTPClient: f.HTTPClient, Server: f.Server, Sessions: f.Sessions, APIKey: f.APIKey, Trace: f.Tracef}
	cmd := &cobra.Command{
		Use:   "call [flags] PATH|URL",
		Short: "Call the Pbench server's API with your token",
		Long: `Send one request to the Pbench server with the profile's access token, refreshed
first when it is about to expire, and print the response body on stdout:
unchanged when stdout is not a terminal, JSON pretty-printed when it is.

With $PBENCH_API_KEY set, that API key is sent instead (no login needed; a
401 is then final, as a key cannot be refreshed).

PATH is relative to the server (/api/v1/datasets?mine=true). A full URL must
have the server's scheme, host and port: the token is never sent anywhere else,
and a redirect to another origin is followed without it.

A request answered 401 is retried once after a refresh, unless its body came
from stdin (-d @-), which cannot be read twice. Bodies from -d @FILE and @- are
streamed, never held in memory, and such a request has no overall timeout
(interrupt it with Ctrl-C); others time out after 60 seconds.

Exit codes: 0 for 2xx and 3xx; 6 for 4xx; 7 for 5xx (the body is still printed);
3 not logged in, 4 session expired (log in again), 5 server or broker unreachable.`,
		Example: `  pbench-auth call /api/v1/user
  pbench-auth call -X PUT -d @run.tar.xz -H 'Content-MD5: …' /api/v1/upload/run.tar.xz
  pbench-auth call -d '{"name": "x"}' -H 'Content-Type: application/json' /api/v1/datasets/ID
  pbench-auth call --anonymous -i /api/v1/endpoints`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Target = args[0]
			if opts.Target == "" {
				return cmdutil.Usagef("empty PATH: give a path such as /api/v1/user, or a URL")
			}
			if _, err := parseHeaders(opts.Headers, opts.Anonymous); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return run(cmd.Context(), opts)
		},
	}
	f.AddClientFlags(cmd, &opts.Flags)
	cmd.Flags().StringVarP(&opts.Method, "method", "X", "", "HTTP method (default GET, or POST when --data is given)")
	cmd.Flags().StringVarP(&opts.Data, "data", "d", "", "request body: STRING, @FILE (streamed) or @- (stdin, streamed; never retried)")
	cmd.Flags().StringArrayVarP(&opts.Headers, "header", "H", nil, `request header "Key: Value" (repeatable)`)
	cmd.Flags().BoolVarP(&opts.Include, "include", "i", false, "print the status line and response headers before the body")
	cmd.Flags().BoolVar(&opts.Anonymous, "anonymous", false, "send no token (and allow any URL and your own Authorization header)")
	return cmd
}

func run(ctx context.Context, opts *Options) error {
	target, profile, err := resolve(opts)
	if err != nil {
		return err
	}
	headers, err := parseHeaders(opts.Headers, opts.Anonymous)
	if err != nil {
		return err
	}
	hc, err := opts.HTTPClient(profile)
	if err != nil {
		return err
	}
	switch key := apiKey(opts); {
	case opts.Anonymous:
	case key != "":
		if opts.Trace != nil {
			opts.Trace("sending the API key in %s (%s), not the profile's token", apiclient.EnvAPIKey, redact.Secret(key))
		}
		hc = apiclient.NewClient(hc, apiclient.APIKey(key), profile, opts.Trace)
	default:
		m, err := opts.Sessions(opts.Flags.TokenStore, profile)
		if err != nil {
			return err
		}
		hc = apiclient.NewClient(hc, m, profile, opts.Trace)
	}
	body, err := openBody(opts.Data, opts.IO.In)
	if err != nil {
		return err
	}
	if body.streamed() {
		c := *hc
		c.Timeout = 0 // a large upload may take longer than any fixed limit
		hc = &c
	}
	method := strings.ToUpper(opts.Method)
	switch {
	case method != "":
	case body != nil:
		method = http.MethodPost
	default:
		method = http.MethodGet
	}
	req, err := body.request(ctx, method, target)
	if err != nil {
		return err
	}
	for k, vs := range headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if h := headers.Get("Host"); h != "" {
		req.Host = h
	}

	resp, err := hc.Do(req)
	if err != nil {
		return requestError(method, target, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if err := printResponse(opts.IO, resp, opts.Include); err != nil {
		return fmt.Errorf("read the response of %s %s: %w", method, target.Redacted(), err)
	}
	return statusError(method, target, resp)
}

func apiKey(opts *Options) string {
	if opts.APIKey == nil {
		return ""
	}
	return opts.APIKey()
}

// resolve turns the PATH|URL argument into the request URL and the profile
// (normalised server) whose token it may carry.
func resolve(opts *Options) (target *url.URL, profile string, err error) {
	absolute := strings.Contains(opts.Target, "://")
	if absolute && opts.Anonymous && opts.Flags.Server == "" {
		u, err := parseURL(opts.Target)
		return u, "", err
	}
	profile, err = opts.Server(opts.Flags.Server)
	if err != nil {
		return nil, "", err
	}
	if !absolute {
		if !strings.HasPrefix(opts.Target, "/") {
			return nil, "", cmdutil.Usagef("PATH %q must start with / (for example /api/v1/user), or be a full URL", opts.Target)
		}
		u, err := parseURL(profile + opts.Target)
		return u, profile, err
	}
	u, err := parseURL(opts.Target)
	if err != nil {
		return nil, "", err
	}
	if !opts.Anonymous && !apiclient.SameOrigin(profile, u) {
		return nil, "", cmdutil.Usagef("refusing to send the token of %s to %s://%s, another origin: use a PATH, --server for that server, or --anonymous",
			profile, u.Scheme, u.Host)
	}
	return u, profile, nil
}

func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, cmdutil.Usagef("invalid URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, cmdutil.Usagef("invalid URL %q: want http(s)://host[:port]/path", raw)
	}
	if u.User != nil {
		return nil, cmdutil.Usagef("URL %s://%s/… carries credentials: remove them", u.Scheme, u.Host)
	}
	return u, nil
}

// parseHeaders parses -H values. Authorization is the token's header:
// setting it is allowed only with --anonymous.
func parseHeaders(raw []string, anonymous bool) (http.Header, error) {
	h := http.Header{}
	for _, kv := range raw {
		k, v, ok := strings.Cut(kv, ":")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t\r\n") {
			return nil, cmdutil.Usagef(`invalid header %q: want "Key: Value"`, kv)
		}
		if strings.EqualFold(k, "Authorization") && !anonymous {
			return nil, cmdutil.Usagef("-H Authorization would replace your token: use --anonymous to send your own")
		}
		h.Add(k, strings.TrimSpace(v))
	}
	return h, nil
}

// body is the request body from -d; nil means none.
type body struct {
	data   string   // -d STRING
	file   *os.File // -d @FILE
	path   string
	size   int64
	stdin  io.Reader // -d @-
	isFile bool
}

// openBody interprets -d: "" no body, "@-" stdin, "@FILE" that file,
// anything else the string itself.
func openBody(data string, stdin io.Reader) (*body, error) {
	switch {
	case data == "":
		return nil, nil
	case data == "@-":
		return &body{stdin: stdin}, nil
	case strings.HasPrefix(data, "@"):
		path := data[1:]
		f, err := os.Open(path) // #nosec G304 -- the user names the file to upload
		if err != nil {
			return nil, cmdutil.Usagef("-d @%s: %w", path, err)
		}
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			_ = f.Close()
			return nil, cmdutil.Usagef("-d @%s: not a regular file: use -d @- to stream from a pipe", path)
		}
		return &body{file: f, path: path, size: fi.Size(), isFile: true}, nil
	default:
		return &body{data: data}, nil
	}
}

func (b *body) streamed() bool { return b != nil && (b.isFile || b.stdin != nil) }

// request builds the request. A file body has a Content-Length and a
// GetBody that reopens the file, so a 401 can be retried without holding
// the file in memory; stdin is sent chunked and cannot be retried.
func (b *body) request(ctx context.Context, method string, u *url.URL) (*http.Request, error) {
	var r io.Reader
	switch {
	case b == nil:
	case b.isFile:
		r = b.file
	case b.stdin != nil:
		r = io.NopCloser(b.stdin) // no GetBody: sent once
	default:
		r = strings.NewReader(b.data) // GetBody set by NewRequest
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		if b != nil && b.file != nil {
			_ = b.file.Close()
		}
		return nil, cmdutil.Usagef("invalid request: %w", err)
	}
	if b != nil && b.isFile {
		req.ContentLength = b.size
		if b.size == 0 {
			_ = b.file.Close()
			req.Body = http.NoBody
		}
		path := b.path
		req.GetBody = func() (io.ReadCloser, error) {
			return os.Open(path) // #nosec G304 -- the same file again
		}
	}
	return req, nil
}

// printResponse writes the status line and headers (with -i) and the body
// to out: streamed unchanged, or pretty-printed JSON on a terminal.
func printResponse(ios *cmdutil.IOStreams, resp *http.Response, include bool) error {
	if include {
		if _, err := fmt.Fprintf(ios.Out, "%s %s\r\n", resp.Proto, resp.Status); err != nil {
			return err
		}
		if err := resp.Header.Write(ios.Out); err != nil {
			return err
		}
		if _, err := io.WriteString(ios.Out, "\r\n"); err != nil {
			return err
		}
	}
	if ios.OutTTY && isJSON(resp.Header.Get("Content-Type")) {
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		if err != nil {
			return err
		}
		var pretty bytes.Buffer
		if json.Indent(&pretty, raw, "", "  ") == nil {
			raw = append(bytes.TrimRight(pretty.Bytes(), "\n"), '\n')
		}
		if _, err := ios.Out.Write(raw); err != nil {
			return err
		}
	}
	_, err := io.Copy(ios.Out, resp.Body)
	return err
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// statusError maps 4xx to exit 6 and 5xx to exit 7; the body is already out.
func statusError(method string, u *url.URL, resp *http.Response) error {
	err := fmt.Errorf("%s %s: the server answered %s", method, u.Redacted(), resp.Status)
	switch {
	case resp.StatusCode >= 500:
		return cmdutil.WithExitCode(cmdutil.ExitHTTPServer, err)
	case resp.StatusCode >= 400:
		return cmdutil.WithExitCode(cmdutil.ExitHTTPClient, err)
	}
	return nil
}

// requestError gives a failed request its exit code: session errors 3/4/5,
// a server that cannot be reached 5, an interrupt 130.
func requestError(method string, u *url.URL, err error) error {
	err = fmt.Errorf("%s %s: %w", method, u.Redacted(), netutil.UnwrapURLError(err))
	switch {
	case errors.Is(err, session.ErrNotLoggedIn), errors.Is(err, session.ErrSessionExpired), errors.Is(err, session.ErrBrokerUnreachable):
		return cmdutil.SessionError(err)
	case errors.Is(err, context.Canceled):
		return cmdutil.WithExitCode(cmdutil.ExitCancelled, err)
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return cmdutil.WithExitCode(cmdutil.ExitNetwork, err)
	}
	return err
}
