package key

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/clitest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/key/create"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
)

const testKey = "pbench_" + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"

// keyServer answers the key endpoints for the API key testKey only, and
// records the requests.
type keyServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newKeyServer(t *testing.T) *keyServer {
	ks := &keyServer{}
	ks.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.mu.Lock()
		ks.seen = append(ks.seen, r.Method+" "+r.URL.RequestURI())
		ks.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer "+testKey {
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"message":"bad credential"}`))
			return
		}
		switch {
		case r.Method == "POST" && r.URL.Path == "/api/v1/key":
			w.WriteHeader(201)
			_, _ = w.Write([]byte(`{"id":7,"label":"ci","key":"pbench_NEWKEY","username":"alice","created":"2026-01-02T03:04:05Z"}`))
		case r.Method == "GET" && r.URL.Path == "/api/v1/key":
			_, _ = w.Write([]byte(`[{"id":7,"label":"ci\tjob","username":"alice","created":"2026-01-02T03:04:05Z","last_used":null,"expires":"2020-01-01T00:00:00Z","prefix":"pbench_NEWK"}]`))
		case r.Method == "DELETE" && r.URL.Path == "/api/v1/key/7":
			_, _ = w.Write([]byte(`"deleted"`))
		default:
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"message":"no API key 8 among yours"}`))
		}
	}))
	t.Cleanup(ks.Close)
	return ks
}

func run(t *testing.T, ks *keyServer, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	if env == nil {
		env = map[string]string{"PBENCH_API_KEY": testKey}
	}
	env["PBENCH_SERVER"] = ks.URL
	f, out, errOut := clitest.Factory(t, ks.Client(), env)
	cmd := NewCmd(f)
	cmd.SetArgs(args)
	cmd.SetOut(out)
	cmd.SetErr(errOut)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestCreate(t *testing.T) {
	ks := newKeyServer(t)
	out, errOut, err := run(t, ks, nil, "create", "--label", "ci job", "--expires", "2d")
	if err != nil {
		t.Fatal(err)
	}
	if out != "pbench_NEWKEY\n" {
		t.Errorf("stdout %q: want the key and nothing else", out)
	}
	if !strings.Contains(errOut, "created API key 7") || strings.Contains(errOut, "NEWKEY") {
		t.Errorf("stderr %q", errOut)
	}
	if want := "POST /api/v1/key?expires_in=172800&label=ci+job"; ks.seen[0] != want {
		t.Errorf("request %q, want %q", ks.seen[0], want)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "12h": 12 * time.Hour, "30m": 30 * time.Minute} {
		if got, err := create.ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"0d", "-1d", "d", "1y", "10ms", "9999d"} {
		if _, err := create.ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
}

func TestListAndDelete(t *testing.T) {
	ks := newKeyServer(t)
	out, _, err := run(t, ks, nil, "list")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `ci\tjob`) || !strings.Contains(out, "pbench_NEWK…") || !strings.Contains(out, "(expired)") || !strings.Contains(out, "never") {
		t.Errorf("table:\n%s", out)
	}
	out, _, err = run(t, ks, nil, "list", "--json")
	var v []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || len(v) != 1 || v[0]["prefix"] != "pbench_NEWK" {
		t.Errorf("--json: %v %s", err, out)
	}
	if _, errOut, err := run(t, ks, nil, "delete", "7"); err != nil || !strings.Contains(errOut, "deleted API key 7") {
		t.Errorf("delete: %v %s", err, errOut)
	}
	_, _, err = run(t, ks, nil, "delete", "8")
	if cmdutil.ExitCode(err) != cmdutil.ExitHTTPClient || !strings.Contains(err.Error(), "no API key 8") {
		t.Errorf("delete of an unknown id: %v (exit %d), want the server's message and exit 6", err, cmdutil.ExitCode(err))
	}
	if _, _, err := run(t, ks, nil, "delete", "x"); cmdutil.ExitCode(err) != cmdutil.ExitUsage {
		t.Errorf("delete x: %v, want a usage error", err)
	}
}

func TestRefusedKey(t *testing.T) {
	ks := newKeyServer(t)
	_, _, err := run(t, ks, map[string]string{"PBENCH_API_KEY": "pbench_other"}, "list")
	if cmdutil.ExitCode(err) != cmdutil.ExitHTTPClient || !strings.Contains(err.Error(), "401") {
		t.Errorf("a refused key: %v", err)
	}
	if len(ks.seen) != 1 {
		t.Errorf("requests %q: an API key must not be retried", ks.seen)
	}
}
