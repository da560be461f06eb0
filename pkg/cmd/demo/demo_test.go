package demo

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/clitest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
)

func newFactory(t *testing.T) (*cmdutil.Factory, *testutil.SyncBuffer, *testutil.SyncBuffer) {
	t.Helper()
	f, _, _ := clitest.Factory(t, &http.Client{Timeout: 30 * time.Second}, nil)
	out, errOut := &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	f.IO.Out, f.IO.ErrOut = out, errOut
	f.OpenBrowser = func(string) error {
		t.Error("the demo opened a real browser")
		return nil
	}
	return f, out, errOut
}

func TestDemo(t *testing.T) {
	f, out, errOut := newFactory(t)
	cmd := NewCmd(f, nil)
	cmd.SetArgs([]string{"--token-store", "file"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("demo: %v\n%s", err, errOut)
	}
	stderr, stdout := errOut.String(), out.String()
	for _, want := range []string{
		"the server answered 401 Unauthorized",
		"Logged in to http://127.0.0.1:",
		"as user <user@example.com>",
		"the server answered 200 OK",
		"the server answered 403 Forbidden",
		"as admin <admin@example.com>",
		"* id_token verified",
		"logged out of http://127.0.0.1:",
		"every step answered as the seed says",
		"http://127.0.0.1:8080/dashboard/", // where a person can watch it in a browser
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	// serve's request log (buffered by serve) is written out before the
	// summary: serve stops first.
	if i := strings.Index(stderr, "every step answered as the seed says"); i < 0 ||
		strings.Contains(stderr[i:], "serve |") || !strings.Contains(stderr[:i], "path=/api/v1/admin/datasets status=200") {
		t.Errorf("serve's request lines should all come before the summary:\n%s", stderr)
	}
	if strings.Count(stderr, "\n   ok\n") != 7 {
		t.Errorf("want 7 steps ok:\n%s", stderr)
	}
	// The identity the server extracted, and the one the gateway forwarded.
	if !strings.Contains(stdout, `"username":"user"`) || !strings.Contains(stdout, `"x-forwarded-user":"admin"`) {
		t.Errorf("stdout lacks the identities:\n%s", stdout)
	}
	if strings.Contains(stderr+stdout, "eyJ") {
		t.Error("a JWT was printed")
	}
	store, err := f.TokenStore("file")
	if err != nil {
		t.Fatal(err)
	}
	if profiles, err := store.List(); err != nil || len(profiles) != 0 {
		t.Errorf("the demo left tokens behind: %v %v", profiles, err)
	}
}

// A step whose answer differs from the seed's fails the demo.
func TestCallChecksTheStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	f, _, _ := newFactory(t)
	d, err := newDemo(&Options{Factory: f, TokenStore: "file"})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.call(srv.URL, "/api/v1/user", http.StatusOK, "--anonymous")(context.Background()); err != nil {
		t.Errorf("200 wanted and answered: %v", err)
	}
	err = d.call(srv.URL, "/api/v1/user", http.StatusUnauthorized, "--anonymous")(context.Background())
	if err == nil || !strings.Contains(err.Error(), "answered 200, the seed wants 401") {
		t.Errorf("got %v, want the mismatch reported", err)
	}
}
