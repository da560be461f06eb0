package call

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/clitest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/session"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

func TestNewCmdFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    Options
		wantErr string
	}{
		{name: "path", args: []string{"/api/v1/user"}, want: Options{Target: "/api/v1/user"}},
		{
			name: "every flag",
			args: []string{"-X", "PUT", "-d", "@run.tar.xz", "-H", "Content-MD5: abc", "-H", "X-A: b", "-i", "--server", "https://p.example.com", "/api/v1/upload/run"},
			want: Options{
				Target: "/api/v1/upload/run", Method: "PUT", Data: "@run.tar.xz", Include: true,
				Headers: []string{"Content-MD5: abc", "X-A: b"}, Flags: cmdutil.ClientFlags{Server: "https://p.example.com"},
			},
		},
		{name: "long names", args: []string{"--method", "DELETE", "--data", "x", "--header", "A: 1", "--include", "--anonymous", "/x"},
			want: Options{Target: "/x", Method: "DELETE", Data: "x", Headers: []string{"A: 1"}, Include: true, Anonymous: true}},
		{name: "own Authorization with --anonymous", args: []string{"--anonymous", "-H", "Authorization: Basic eA==", "/x"},
			want: Options{Target: "/x", Anonymous: true, Headers: []string{"Authorization: Basic eA=="}}},
		{name: "no argument", args: nil, wantErr: "accepts 1 arg"},
		{name: "two arguments", args: []string{"/a", "/b"}, wantErr: "accepts 1 arg"},
		{name: "header without colon", args: []string{"-H", "oops", "/x"}, wantErr: `invalid header "oops"`},
		{name: "own Authorization with the token", args: []string{"-H", "authorization: Bearer x", "/x"}, wantErr: "use --anonymous"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ios, _, _, _ := cmdutil.Test()
			f := &cmdutil.Factory{IO: ios}
			var got *Options
			cmd := NewCmd(f, func(o *Options) error { got = o; return nil })
			cmd.SetArgs(tc.args)
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			err := cmd.Execute()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			g := *got
			g.IO, g.HTTPClient, g.Server, g.Sessions, g.APIKey, g.Trace = nil, nil, nil, nil, nil, nil
			if fmt.Sprintf("%+v", g) != fmt.Sprintf("%+v", tc.want) {
				t.Errorf("options\n got %+v\nwant %+v", g, tc.want)
			}
		})
	}
}

// env is a Pbench server stand-in, a token endpoint, and a logged-in
// profile in a real file token store.
type env struct {
	t       *testing.T
	srv     *httptest.Server
	profile string
	store   tokenstore.Store
	opts    *Options
	out     *bytes.Buffer
	errOut  *bytes.Buffer
	refresh atomic.Int32 // refresh grants answered

	brokerURL    string
	brokerRefuse atomic.Bool // answer refresh grants with invalid_grant
}

func newEnv(t *testing.T, handler http.HandlerFunc) *env {
	t.Helper()
	e := &env{t: t, srv: httptest.NewServer(handler)}
	t.Cleanup(e.srv.Close)
	broker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if e.brokerRefuse.Load() {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_grant","error_description":"Token is not active"}`)
			return
		}
		n := e.refresh.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"access_token": fmt.Sprintf("access-%d", n), "token_type": "Bearer", "expires_in": 300,
			"refresh_token": fmt.Sprintf("refresh-%d", n),
		})
	}))
	t.Cleanup(broker.Close)
	e.brokerURL = broker.URL

	e.profile = e.srv.URL
	dir := t.TempDir()
	store, err := tokenstore.Open(tokenstore.Options{Kind: tokenstore.KindFile, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	e.store = store
	e.login("access-0")
	ios, in, out, errOut := cmdutil.Test()
	in.WriteString("from stdin")
	e.out, e.errOut = out, errOut
	e.opts = &Options{
		IO:         ios,
		HTTPClient: func(string) (*http.Client, error) { return &http.Client{Timeout: time.Minute}, nil },
		Server:     func(string) (string, error) { return e.profile, nil },
		Sessions: func(string, string) (*session.Manager, error) {
			return &session.Manager{Store: store, LockDir: filepath.Join(dir, "locks"), HTTPClient: broker.Client()}, nil
		},
	}
	return e
}

func (e *env) login(access string) {
	e.t.Helper()
	err := e.store.Save(e.profile, &tokenstore.TokenSet{
		Server: e.profile, ClientID: "pbench-client", TokenEndpoint: e.brokerURL + "/token",
		AccessToken: access, RefreshToken: "refresh-0", Expiry: time.Now().Add(time.Hour),
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) run(target string, mod func(*Options)) error {
	e.t.Helper()
	e.opts.Target = target
	if mod != nil {
		mod(e.opts)
	}
	return run(e.t.Context(), e.opts)
}

func TestExitCodesAndBody(t *testing.T) {
	for _, tc := range []struct {
		status   int
		wantCode int
	}{
		{200, cmdutil.ExitOK},
		{204, cmdutil.ExitOK},
		{304, cmdutil.ExitOK},
		{401, cmdutil.ExitHTTPClient},
		{403, cmdutil.ExitHTTPClient},
		{404, cmdutil.ExitHTTPClient},
		{500, cmdutil.ExitHTTPServer},
		{503, cmdutil.ExitHTTPServer},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			body := fmt.Sprintf(`{"message": "status %d"}`, tc.status)
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
				if got := r.Header.Get("Authorization"); got != "Bearer access-0" && got != "Bearer access-1" {
					t.Errorf("Authorization %q, want the stored token", got)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, body)
			})
			err := e.run("/api/v1/datasets?mine=true", nil)
			if got := cmdutil.ExitCode(err); got != tc.wantCode {
				t.Errorf("exit code %d (%v), want %d", got, err, tc.wantCode)
			}
			want := body
			if tc.status == 204 || tc.status == 304 {
				want = "" // no body allowed
			}
			if e.out.String() != want {
				t.Errorf("stdout %q, want the body unchanged %q", e.out.String(), want)
			}
			if err != nil && !strings.Contains(err.Error(), fmt.Sprint(tc.status)) {
				t.Errorf("error %q does not name the status", err)
			}
		})
	}
}

func TestMethodDataAndHeaders(t *testing.T) {
	type seen struct{ method, body, ctype, custom, auth string }
	tests := []struct {
		name string
		mod  func(*Options)
		want seen
	}{
		{"GET by default", nil, seen{method: "GET", auth: "Bearer access-0"}},
		{"POST with data", func(o *Options) { o.Data = `{"a":1}`; o.Headers = []string{"Content-Type: application/json"} },
			seen{method: "POST", body: `{"a":1}`, ctype: "application/json", auth: "Bearer access-0"}},
		{"-X wins", func(o *Options) { o.Method = "put"; o.Data = "x" }, seen{method: "PUT", body: "x", auth: "Bearer access-0"}},
		{"stdin", func(o *Options) { o.Data = "@-" }, seen{method: "POST", body: "from stdin", auth: "Bearer access-0"}},
		{"headers repeat", func(o *Options) { o.Headers = []string{"X-Custom: a", "X-Custom: b"} }, seen{method: "GET", custom: "a,b", auth: "Bearer access-0"}},
		{"anonymous", func(o *Options) { o.Anonymous = true }, seen{method: "GET"}},
		{"anonymous with own header", func(o *Options) { o.Anonymous = true; o.Headers = []string{"Authorization: Basic eA=="} },
			seen{method: "GET", auth: "Basic eA=="}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got seen
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got = seen{r.Method, string(b), r.Header.Get("Content-Type"), strings.Join(r.Header.Values("X-Custom"), ","), r.Header.Get("Authorization")}
			})
			if err := e.run("/api/v1/x", tc.mod); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("server saw %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSameOriginRule(t *testing.T) {
	var otherCalls atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		otherCalls.Add(1)
		if a := r.Header.Get("Authorization"); a != "" {
			t.Errorf("another origin received Authorization %q", a)
		}
	}))
	defer other.Close()
	var calls atomic.Int32
	e := newEnv(t, func(http.ResponseWriter, *http.Request) { calls.Add(1) })

	err := e.run(other.URL+"/api/v1/user", nil)
	var ue *cmdutil.UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "refusing to send the token") {
		t.Errorf("another origin: error %v, want a usage error refusing it", err)
	}
	if otherCalls.Load() != 0 {
		t.Error("the request to another origin was sent")
	}

	if err := e.run(e.srv.URL+"/api/v1/user", nil); err != nil || calls.Load() != 1 {
		t.Errorf("same origin as a full URL: error %v, calls %d; want it sent", err, calls.Load())
	}
	if err := e.run(other.URL+"/api/v1/endpoints", func(o *Options) { o.Anonymous = true }); err != nil || otherCalls.Load() != 1 {
		t.Errorf("another origin with --anonymous: error %v, calls %d; want it sent without a token", err, otherCalls.Load())
	}
	for _, bad := range []string{"api/v1/user", "ftp://x/y", "https://user:pw@" + strings.TrimPrefix(e.srv.URL, "http://") + "/x"} {
		if err := e.run(bad, func(o *Options) { o.Anonymous = false }); !errors.As(err, &ue) {
			t.Errorf("%q: error %v, want a usage error", bad, err)
		}
	}
}

func TestRedirectToAnotherHostCarriesNoToken(t *testing.T) {
	var landed atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		landed.Add(1)
		if a := r.Header.Get("Authorization"); a != "" {
			t.Errorf("redirect target received Authorization %q", a)
		}
	}))
	defer other.Close()
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/elsewhere", http.StatusTemporaryRedirect)
	})
	if err := e.run("/api/v1/user", nil); err != nil {
		t.Fatal(err)
	}
	if landed.Load() != 1 {
		t.Errorf("redirect target called %d times, want 1", landed.Load())
	}
}

func TestUnauthorizedRefreshesAndRetriesFileBody(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.tar.xz")
	content := strings.Repeat("tarball ", 4096)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var auths, bodies []string
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		auths, bodies = append(auths, r.Header.Get("Authorization")), append(bodies, string(b))
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer access-1" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	})
	e.login("access-revoked")
	if err := e.run("/api/v1/upload/run.tar.xz", func(o *Options) { o.Method = "PUT"; o.Data = "@" + path }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(auths) != "[Bearer access-revoked Bearer access-1]" {
		t.Errorf("Authorization headers %q, want the rejected token, then the refreshed one", auths)
	}
	if len(bodies) != 2 || bodies[0] != content || bodies[1] != content {
		t.Errorf("bodies of %d requests, want the whole file twice", len(bodies))
	}
	if ts, _ := e.store.Load(e.profile); ts.AccessToken != "access-1" {
		t.Error("the refreshed token was not stored")
	}
}

func TestStdinBodyIsNotRetried(t *testing.T) {
	var calls atomic.Int32
	e := newEnv(t, func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
	})
	err := e.run("/api/v1/upload/x", func(o *Options) { o.Data = "@-" })
	if cmdutil.ExitCode(err) != cmdutil.ExitHTTPClient || calls.Load() != 1 || e.refresh.Load() != 0 {
		t.Errorf("exit %d, %d requests, %d refreshes; want 6, 1 request, no refresh", cmdutil.ExitCode(err), calls.Load(), e.refresh.Load())
	}
}

func TestNotLoggedIn(t *testing.T) {
	e := newEnv(t, func(http.ResponseWriter, *http.Request) { t.Error("the server was called") })
	if err := e.store.Delete(e.profile); err != nil {
		t.Fatal(err)
	}
	err := e.run("/api/v1/user", nil)
	if cmdutil.ExitCode(err) != cmdutil.ExitNotLoggedIn || !strings.Contains(err.Error(), "pbench-auth login") {
		t.Errorf("error %v (exit %d), want exit 3 telling how to log in", err, cmdutil.ExitCode(err))
	}
}

func TestServerUnreachable(t *testing.T) {
	e := newEnv(t, func(http.ResponseWriter, *http.Request) {})
	e.profile = "http://" + testutil.ReserveAddr(t) // nothing listens there
	err := e.run("/api/v1/user", func(o *Options) { o.Anonymous = true })
	if cmdutil.ExitCode(err) != cmdutil.ExitNetwork {
		t.Errorf("error %v (exit %d), want exit 5", err, cmdutil.ExitCode(err))
	}
}

func TestOutput(t *testing.T) {
	const body = `{"username":"alice","roles":["ADMIN"]}`
	handler := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("X-Request-Id", "r1")
		_, _ = io.WriteString(w, body)
	}
	tests := []struct {
		name    string
		tty     bool
		include bool
		want    string
	}{
		{"pipe: unchanged", false, false, body},
		{"terminal: pretty", true, false, "{\n  \"username\": \"alice\",\n  \"roles\": [\n    \"ADMIN\"\n  ]\n}\n"},
		{"include", false, true, "HTTP/1.1 200 OK\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, handler)
			e.opts.IO.OutTTY = tc.tty
			if err := e.run("/api/v1/user", func(o *Options) { o.Include = tc.include }); err != nil {
				t.Fatal(err)
			}
			got := e.out.String()
			if !tc.include && got != tc.want {
				t.Errorf("stdout %q, want %q", got, tc.want)
			}
			if tc.include && (!strings.HasPrefix(got, tc.want) || !strings.Contains(got, "X-Request-Id: r1\r\n") || !strings.HasSuffix(got, "\r\n\r\n"+body)) {
				t.Errorf("stdout %q, want status line, headers, blank line, body", got)
			}
		})
	}
}

// limitedReader hands out data only while the server has received all but
// window bytes of what it handed out before: a client that buffered the
// body before sending would read past the window and fail.
type limitedReader struct {
	remaining int64
	given     atomic.Int64
	received  *atomic.Int64
	window    int64
}

var errBuffered = errors.New("the client read the body far ahead of what it sent: it is buffering")

func (r *limitedReader) Read(p []byte) (int, error) {
	if r.remaining == 0 {
		return 0, io.EOF
	}
	if r.given.Load()-r.received.Load() > r.window {
		return 0, errBuffered
	}
	n := int64(len(p))
	n = min(n, r.remaining)
	clear(p[:n])
	r.remaining -= n
	r.given.Add(n)
	return int(n), nil
}

func TestStdinIsStreamed(t *testing.T) {
	const size, window = 128 << 20, 32 << 20 // window > loopback socket buffers
	var received atomic.Int64
	e := newEnv(t, func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(countingWriter{&received}, r.Body)
	})
	e.opts.IO.In = &limitedReader{remaining: size, received: &received, window: window}
	if err := e.run("/api/v1/upload/big", func(o *Options) { o.Method = "PUT"; o.Data = "@-" }); err != nil {
		t.Fatal(err)
	}
	if received.Load() != size {
		t.Errorf("server received %d bytes, want %d", received.Load(), size)
	}
}

func TestFileIsStreamedWithLength(t *testing.T) {
	const size = 128 << 20
	path := filepath.Join(t.TempDir(), "big.tar.xz")
	f, err := os.Create(path) // #nosec G304 -- test file
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	_ = f.Close()
	var received atomic.Int64
	var length int64
	e := newEnv(t, func(_ http.ResponseWriter, r *http.Request) {
		length = r.ContentLength
		_, _ = io.Copy(countingWriter{&received}, r.Body)
	})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := e.run("/api/v1/upload/big", func(o *Options) { o.Method = "PUT"; o.Data = "@" + path }); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if length != size || received.Load() != size {
		t.Errorf("Content-Length %d, received %d; want %d", length, received.Load(), size)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/8 {
		t.Errorf("allocated %d MiB sending a %d MiB file: it is being buffered", alloc>>20, size>>20)
	}
}

type countingWriter struct{ n *atomic.Int64 }

func (w countingWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}

func TestTraceNamesStepsButNoSecret(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer access-1" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	})
	var trace bytes.Buffer
	e.opts.Trace = func(format string, args ...any) { fmt.Fprintf(&trace, format+"\n", args...) }
	if err := e.run("/api/v1/user?token=query-secret", nil); err != nil {
		t.Fatal(err)
	}
	got := trace.String()
	if !strings.Contains(got, "401") || !strings.Contains(got, "retrying once") {
		t.Errorf("trace %q does not tell about the refresh-and-retry", got)
	}
	for _, secret := range []string{"access-0", "access-1", "refresh-0", "query-secret"} {
		if strings.Contains(got+e.errOut.String(), secret) {
			t.Errorf("trace or stderr shows %q:\n%s", secret, got)
		}
	}
}

// BenchmarkUploadFile sends a 64 MiB file with -d @FILE: B/op stays far
// below the file's size because the body is streamed from disk.
func BenchmarkUploadFile(b *testing.B) {
	const size = 64 << 20
	path := filepath.Join(b.TempDir(), "run.tar.xz")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	ios, _, _, _ := cmdutil.Test()
	opts := &Options{
		IO:         ios,
		HTTPClient: func(string) (*http.Client, error) { return &http.Client{}, nil },
		Target:     srv.URL + "/api/v1/upload/run.tar.xz",
		Method:     http.MethodPut,
		Data:       "@" + path,
		Anonymous:  true,
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if err := run(b.Context(), opts); err != nil {
			b.Fatal(err)
		}
	}
}

func TestUnauthorizedAndRefreshRefusedIsSessionExpired(t *testing.T) {
	var calls atomic.Int32
	e := newEnv(t, func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
	})
	e.brokerRefuse.Store(true)
	err := e.run("/api/v1/user", nil)
	if cmdutil.ExitCode(err) != cmdutil.ExitSessionExpired || !strings.Contains(err.Error(), "pbench-auth login") {
		t.Errorf("error %v (exit %d), want exit 4 telling to log in again", err, cmdutil.ExitCode(err))
	}
	if calls.Load() != 1 {
		t.Errorf("%d requests, want 1: no retry without a new token", calls.Load())
	}
}

// Flags are parsed into Options, and refused before runF when invalid.
func TestFlagParsing(t *testing.T) {
	clitest.ParseTable(t, NewCmd, []clitest.FlagCase[Options]{
		{Args: []string{"/api/v1/user"}, Want: func(o *Options) bool {
			return o.Target == "/api/v1/user" && o.Method == "" && o.Data == "" && !o.Include && !o.Anonymous
		}},
		{Args: []string{"-X", "put", "-d", "@body.json", "-H", "A: 1", "-H", "B: 2", "-i", "--server", "https://p", "--token-store", "file", "/x"},
			Want: func(o *Options) bool {
				return o.Method == "put" && o.Data == "@body.json" && slices.Equal(o.Headers, []string{"A: 1", "B: 2"}) &&
					o.Include && o.Flags.Server == "https://p" && o.Flags.TokenStore == "file"
			}},
		{Args: []string{"--anonymous", "-H", "Authorization: Basic x", "https://elsewhere/"}, Want: func(o *Options) bool {
			return o.Anonymous && o.Target == "https://elsewhere/"
		}},
		{Args: []string{}, Err: "accepts 1 arg"},
		{Args: []string{""}, Err: "empty PATH"},
		{Args: []string{"-H", "no colon", "/x"}, Err: "no colon"},
		{Args: []string{"-H", "Authorization: Bearer x", "/x"}, Err: "Authorization"},
	})
}
