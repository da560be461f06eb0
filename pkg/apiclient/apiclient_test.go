package apiclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/pkg/session"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// fakeSessions hands out "token-N"; Refresh moves to the next N.
type fakeSessions struct {
	mu       sync.Mutex
	n        int
	err      error    // returned by Token
	rejected []string // the tokens Refresh was given
}

func (s *fakeSessions) Token(context.Context, string) (*tokenstore.TokenSet, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	return &tokenstore.TokenSet{AccessToken: fmt.Sprintf("token-%d", s.n)}, nil
}

func (s *fakeSessions) Refresh(_ context.Context, _, rejected string) (*tokenstore.TokenSet, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejected = append(s.rejected, rejected)
	s.n++
	return &tokenstore.TokenSet{AccessToken: fmt.Sprintf("token-%d", s.n)}, nil
}

// recorder is a server that records the Authorization header and body of
// each request, and answers with the status that accept returns.
type recorder struct {
	srv    *httptest.Server
	mu     sync.Mutex
	auths  []string
	bodies []string
}

func newRecorder(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, auth string)) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.auths = append(rec.auths, r.Header.Get("Authorization"))
		rec.bodies = append(rec.bodies, string(body))
		rec.mu.Unlock()
		handle(w, r, r.Header.Get("Authorization"))
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) seen() (auths, bodies []string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.auths...), append([]string(nil), rec.bodies...)
}

func ok(w http.ResponseWriter, _ *http.Request, _ string) { w.WriteHeader(http.StatusOK) }

func do(t *testing.T, c *http.Client, method, u string, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}

func TestAddsTokenOnlyForTheProfileOrigin(t *testing.T) {
	server := newRecorder(t, ok)
	other := newRecorder(t, ok)
	c := NewClient(nil, &fakeSessions{}, server.srv.URL, nil)

	do(t, c, http.MethodGet, server.srv.URL+"/api/v1/user", nil)
	do(t, c, http.MethodGet, other.srv.URL+"/api/v1/user", nil)

	if auths, _ := server.seen(); len(auths) != 1 || auths[0] != "Bearer token-0" {
		t.Errorf("profile server saw Authorization %q, want [Bearer token-0]", auths)
	}
	if auths, _ := other.seen(); len(auths) != 1 || auths[0] != "" {
		t.Errorf("another origin saw Authorization %q, want none", auths)
	}
}

func TestRedirectToAnotherOriginCarriesNoToken(t *testing.T) {
	elsewhere := newRecorder(t, ok)
	var target string
	server := newRecorder(t, func(w http.ResponseWriter, r *http.Request, _ string) {
		http.Redirect(w, r, target, http.StatusFound)
	})
	targets := map[string]string{
		// Go's client keeps headers on a redirect to the same host on
		// another port: only the transport and CheckRedirect protect them.
		"same host, another port": elsewhere.srv.URL + "/landing",
		"another host":            strings.Replace(elsewhere.srv.URL, "127.0.0.1", "localhost", 1) + "/landing",
	}
	for name, u := range targets {
		for _, header := range []string{"", "Bearer caller-set"} {
			t.Run(fmt.Sprintf("%s, caller header %q", name, header), func(t *testing.T) {
				target = u
				c := NewClient(nil, &fakeSessions{}, server.srv.URL, nil)
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, server.srv.URL+"/api/v1/datasets", nil)
				if header != "" {
					req.Header.Set("Authorization", header)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_ = resp.Body.Close()
				auths, _ := elsewhere.seen()
				if len(auths) == 0 {
					t.Fatal("the redirect was not followed")
				}
				if got := auths[len(auths)-1]; got != "" {
					t.Errorf("redirect target saw Authorization %q, want none", got)
				}
				if got, _ := server.seen(); got[len(got)-1] != "Bearer token-0" {
					t.Errorf("profile server saw %q, want the token", got[len(got)-1])
				}
			})
		}
	}
}

func TestRedirectWithinTheOriginKeepsTheToken(t *testing.T) {
	var srvURL string
	server := newRecorder(t, func(w http.ResponseWriter, r *http.Request, _ string) {
		if r.URL.Path == "/old" {
			http.Redirect(w, r, srvURL+"/new", http.StatusFound)
		}
	})
	srvURL = server.srv.URL
	c := NewClient(nil, &fakeSessions{}, server.srv.URL, nil)
	do(t, c, http.MethodGet, server.srv.URL+"/old", nil)
	if auths, _ := server.seen(); len(auths) != 2 || auths[1] != "Bearer token-0" {
		t.Errorf("Authorization seen %q, want the token on both requests", auths)
	}
}

func TestUnauthorizedRefreshesAndRetriesOnce(t *testing.T) {
	tests := []struct {
		name       string
		valid      string // the token the server accepts
		body       func() io.Reader
		wantStatus int
		wantAuths  []string
		wantBodies []string
		wantRefs   []string // tokens handed to Refresh
	}{
		{
			name:       "replayable body is sent again with the new token",
			valid:      "token-1",
			body:       func() io.Reader { return strings.NewReader("payload") },
			wantStatus: http.StatusOK,
			wantAuths:  []string{"Bearer token-0", "Bearer token-1"},
			wantBodies: []string{"payload", "payload"},
			wantRefs:   []string{"token-0"},
		},
		{
			name:       "no body",
			valid:      "token-1",
			body:       func() io.Reader { return nil },
			wantStatus: http.StatusOK,
			wantAuths:  []string{"Bearer token-0", "Bearer token-1"},
			wantBodies: []string{"", ""},
			wantRefs:   []string{"token-0"},
		},
		{
			name:       "still 401 after the refresh: no second retry",
			valid:      "never",
			body:       func() io.Reader { return nil },
			wantStatus: http.StatusUnauthorized,
			wantAuths:  []string{"Bearer token-0", "Bearer token-1"},
			wantBodies: []string{"", ""},
			wantRefs:   []string{"token-0"},
		},
		{
			name:  "body that cannot be replayed: no retry",
			valid: "token-1",
			// An io.Reader that is neither bytes nor strings gets no GetBody.
			body:       func() io.Reader { return io.MultiReader(strings.NewReader("stream")) },
			wantStatus: http.StatusUnauthorized,
			wantAuths:  []string{"Bearer token-0"},
			wantBodies: []string{"stream"},
			wantRefs:   nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			server := newRecorder(t, func(w http.ResponseWriter, _ *http.Request, auth string) {
				if auth != "Bearer "+tc.valid {
					w.WriteHeader(http.StatusUnauthorized)
				}
			})
			sessions := &fakeSessions{}
			c := NewClient(nil, sessions, server.srv.URL, nil)
			resp := do(t, c, http.MethodPost, server.srv.URL+"/api/v1/upload/x", tc.body())
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			auths, bodies := server.seen()
			if fmt.Sprint(auths) != fmt.Sprint(tc.wantAuths) {
				t.Errorf("Authorization headers %q, want %q", auths, tc.wantAuths)
			}
			if fmt.Sprint(bodies) != fmt.Sprint(tc.wantBodies) {
				t.Errorf("bodies %q, want %q", bodies, tc.wantBodies)
			}
			if fmt.Sprint(sessions.rejected) != fmt.Sprint(tc.wantRefs) {
				t.Errorf("Refresh got %q, want %q", sessions.rejected, tc.wantRefs)
			}
		})
	}
}

func TestSessionErrorIsReturned(t *testing.T) {
	server := newRecorder(t, ok)
	notLoggedIn := fmt.Errorf("%w to %s: run login", session.ErrNotLoggedIn, server.srv.URL)
	c := NewClient(nil, &fakeSessions{err: notLoggedIn}, server.srv.URL, nil)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, server.srv.URL+"/api/v1/user", nil)
	_, err := c.Do(req)
	if !errors.Is(err, session.ErrNotLoggedIn) {
		t.Errorf("error %v, want one wrapping session.ErrNotLoggedIn", err)
	}
	if auths, _ := server.seen(); len(auths) != 0 {
		t.Errorf("the server was called %d times without a session", len(auths))
	}
}

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		server, u string
		want      bool
	}{
		{"https://pbench.example.com", "https://pbench.example.com/api/v1/user", true},
		{"https://pbench.example.com", "https://PBENCH.example.com:443/api", true},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/x?y=1", true},
		{"https://pbench.example.com/prefix", "https://pbench.example.com/other", true},
		{"https://pbench.example.com", "http://pbench.example.com/api", false},
		{"https://pbench.example.com", "https://pbench.example.com:8443/api", false},
		{"https://pbench.example.com", "https://evil.example.com/api", false},
		{"https://pbench.example.com", "https://pbench.example.com.evil.com/api", false},
		{"http://127.0.0.1:8080", "http://localhost:8080/api", false},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8081/api", false},
	}
	for _, tc := range tests {
		u, err := url.Parse(tc.u)
		if err != nil {
			t.Fatal(err)
		}
		if got := SameOrigin(tc.server, u); got != tc.want {
			t.Errorf("SameOrigin(%q, %q) = %v, want %v", tc.server, tc.u, got, tc.want)
		}
	}
}
