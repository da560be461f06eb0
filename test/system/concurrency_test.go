package system

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// refreshCounter is a reverse proxy in front of the broker's token endpoint
// that counts refresh grants.
type refreshCounter struct {
	srv    *httptest.Server
	grants atomic.Int32
}

func newRefreshCounter(t *testing.T, brokerBase string) *refreshCounter {
	t.Helper()
	target, err := url.Parse(brokerBase)
	if err != nil {
		t.Fatal(err)
	}
	rc := &refreshCounter{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if form, err := url.ParseQuery(string(body)); err == nil && form.Get("grant_type") == "refresh_token" {
			rc.grants.Add(1)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// TestParallelCallsRefreshOnce runs 50 `pbench-auth call` processes at once
// (the real binary, built with -race under go test -race) with a stored
// access token that has expired: exactly one refresh grant reaches the
// broker, and all 50 calls succeed with the refreshed token.
//
// The broker is serve --dev; the stored token endpoint is pointed at a
// counting reverse proxy in front of it, and the stored expiry set in the
// past (the file store), so every process needs a refresh.
func TestParallelCallsRefreshOnce(t *testing.T) {
	const n = 50
	c, base, _, _ := loggedIn(t, "file", nil)
	before := c.storedTokens()

	counter := newRefreshCounter(t, base)
	c.editTokens(func(ts map[string]any) {
		u, err := url.Parse(ts["token_endpoint"].(string))
		if err != nil {
			t.Fatal(err)
		}
		ts["token_endpoint"] = counter.srv.URL + u.Path
		ts["expiry"] = time.Now().Add(-time.Minute).Format(time.RFC3339)
	})

	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i] = c.run("call", "/api/v1/user") })
	}
	wg.Wait()
	ok := 0
	for i, r := range results {
		if r.code != 0 || !strings.Contains(r.stdout, `"username":"user"`) {
			t.Errorf("call %d: exit %d\nstdout: %s\nstderr: %s", i, r.code, r.stdout, r.stderr)
			continue
		}
		ok++
	}
	if got := counter.grants.Load(); got != 1 {
		t.Errorf("%d refresh grants at the broker for %d processes, want exactly 1", got, n)
	}
	after := c.storedTokens()
	if after[0] == before[0] {
		t.Error("the stored access token was not refreshed")
	}
	t.Logf("%d/%d calls succeeded, %d refresh grant(s)", ok, n, counter.grants.Load())
}
