package discovery

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// FuzzFetchEndpoints serves any body as a Pbench server's /api/v1/endpoints
// answer. Properties: no panic; either an error, or an absolute http(s)
// issuer URL and a client id (what login needs); a document that is not JSON is never
// accepted. Seeds: testdata/fuzz/FuzzFetchEndpoints and the cases below.
func FuzzFetchEndpoints(f *testing.F) {
	for _, seed := range []string{
		`{"identification":"pbench-auth","openid":{"server":"https://sso.example.com","realm":"pbench","client":"pbench-client"}}`,
		`{"openid":{"issuer":"https://dex.example.com","client":"pbench-cli"}}`,
		`{"openid":{"server":"https://sso.example.com/","realm":"pbench","client":"c","issuer":""}}`,
		`{"openid":null}`,
		`{"openid":{"client":""}}`,
		`{"openid":{"server":1}}`,
		`[]`,
		`null`,
		`<html>not json</html>`,
		``,
	} {
		f.Add(seed)
	}
	var body atomic.Pointer[string]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(*body.Load()))
	}))
	f.Cleanup(srv.Close)
	hc := srv.Client()

	f.Fuzz(func(t *testing.T, doc string) {
		body.Store(&doc) // the target runs sequentially within one worker process
		ep, err := FetchEndpoints(context.Background(), hc, srv.URL)
		if err != nil {
			if ep != nil {
				t.Fatalf("both an error and a document: %v", err)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("timed out: %v", err)
			}
			return
		}
		if ep.OpenID == nil || ep.OpenID.Client == "" {
			t.Fatalf("accepted without a client id: %q", doc)
		}
		issuer := ep.OpenID.IssuerURL()
		if u, err := url.Parse(issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
			t.Fatalf("accepted without an absolute http(s) issuer (%q): %q", issuer, doc)
		}
		if d := strings.TrimSpace(doc); !strings.HasPrefix(d, "{") {
			t.Fatalf("accepted a document that is not a JSON object: %q", doc)
		}
	})
}
