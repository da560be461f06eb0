package cmdutil

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// proxyCounting is an HTTP proxy that answers every request 200 itself and
// counts them: a request refused by the CLI never reaches it.
func proxyCounting(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { n.Add(1) }))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestPlainHTTPToNonLoopbackIsRefused(t *testing.T) {
	proxy, hits := proxyCounting(t)
	for _, u := range []string{"http://pbench.example.com/api/v1/endpoints", "HTTP://192.0.2.7:8080/realms/x/token", "http://[2001:db8::1]/x"} {
		f, errOut := newTestFactory(map[string]string{"HTTP_PROXY": proxy.URL})
		err := get(f, "", u)
		var ie *InsecureHTTPError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), "--allow-insecure-http") {
			t.Errorf("%s: %v, want an InsecureHTTPError naming the opt-in", u, err)
		}
		if errOut.Len() != 0 {
			t.Errorf("%s: refused, yet stderr says %q", u, errOut)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d refused requests left the process", n)
	}

	// The server resolved from --server is refused before anything is sent.
	f, _ := newTestFactory(nil)
	_, err := f.Server("http://pbench.example.com")
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "refusing plain http") {
		t.Errorf("Server(http://pbench.example.com) = %v, want a usage error", err)
	}
	if _, err := f.Server("http://127.0.0.1:8080"); err != nil {
		t.Errorf("loopback http server: %v", err)
	}
}

func TestPlainHTTPOptInWarnsOnEveryRun(t *testing.T) {
	proxy, hits := proxyCounting(t)
	for name, setup := range map[string]func(*Factory){
		"flag": func(f *Factory) { f.AllowInsecureHTTP = true },
		"env":  func(*Factory) {},
	} {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{"HTTP_PROXY": proxy.URL}
			if name == "env" {
				env[AllowInsecureHTTPEnv] = "1"
			}
			before := hits.Load()
			f, errOut := newTestFactory(env)
			setup(f)
			for range 2 {
				if err := get(f, "", "http://pbench.example.com/api/v1/endpoints"); err != nil {
					t.Fatal(err)
				}
			}
			if err := get(f, "", "http://broker.example.com/token"); err != nil {
				t.Fatal(err)
			}
			if got := hits.Load() - before; got != 3 {
				t.Errorf("%d requests reached the proxy, want 3", got)
			}
			// One warning per host and run.
			if c := strings.Count(errOut.String(), "warning: --allow-insecure-http"); c != 2 ||
				!strings.Contains(errOut.String(), "http://pbench.example.com in clear") {
				t.Errorf("warnings:\n%s", errOut)
			}
		})
	}
}

func TestPlainHTTPLoopbackAndRedirects(t *testing.T) {
	var target string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/away" {
			http.Redirect(w, r, target, http.StatusFound)
		}
	}))
	t.Cleanup(srv.Close)
	f, errOut := newTestFactory(nil)
	if err := get(f, "", srv.URL+"/here"); err != nil {
		t.Fatalf("loopback http: %v", err)
	}
	target = "http://evil.example.com/steal"
	var ie *InsecureHTTPError
	if err := get(f, "", srv.URL+"/away"); !errors.As(err, &ie) {
		t.Errorf("redirect to plain http off the machine: %v", err)
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr: %q", errOut)
	}
}
