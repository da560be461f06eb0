package doctor_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/brokertest"
	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/clitest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/doctor"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/root"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/server"
	"github.com/distributed-system-analysis/pbench-auth/server/devbroker"
	"github.com/distributed-system-analysis/pbench-auth/server/devbroker/devbrowser"
)

// TestDevBroker runs the real thing on loopback: the development broker and
// the validating server's handler on one listener (as `serve --dev` does), a
// real `login` through the broker's login page, then `doctor`, whose every
// check must pass.
func TestDevBroker(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	broker := brokertest.Start(t, devbroker.User{Name: "alice", Password: "alice-pw", Roles: []string{"ADMIN"}})
	hs := broker.Server
	srv, err := server.New(ctx, server.Config{
		Issuer: broker.Issuer(),
		Leeway: 30 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	broker.Mux.Handle("/", srv.Handler())

	f, out, _ := clitest.Factory(t, &http.Client{Timeout: 10 * time.Second}, nil)
	f.IO.ErrOut = io.Discard
	f.OpenBrowser = func(authURL string) error {
		// The browser: log alice in, deliver the redirect to login's listener.
		loc, err := devbrowser.Login(ctx, nil, authURL, "alice", "alice-pw")
		if err != nil {
			return err
		}
		resp, err := http.Get(loc) // #nosec G107 -- login's loopback listener
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	exec := func(args ...string) error {
		cmd := root.NewCmd(f)
		cmd.SetArgs(args)
		return cmd.ExecuteContext(ctx)
	}

	if err := exec("login", "--server", hs.URL, "--token-store", "file"); err != nil {
		t.Fatalf("login: %v", err)
	}
	out.Reset()
	err = exec("doctor", "--server", hs.URL, "--token-store", "file", "--json")
	var rep doctor.Report
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
		t.Fatalf("doctor --json: %v\n%s", jerr, out)
	}
	for _, c := range rep.Checks {
		if c.Status != doctor.StatusOK {
			t.Errorf("%s: %s: %s (fix: %s)", c.Name, c.Status, c.Message, c.Fix)
		}
	}
	if len(rep.Checks) != 9 || !rep.OK || err != nil {
		t.Fatalf("%d checks, ok %v, err %v; want 9 passing checks", len(rep.Checks), rep.OK, err)
	}

	// The same report as text names every check, and no token.
	out.Reset()
	if err := exec("doctor", "--server", hs.URL, "--token-store", "file"); err != nil {
		t.Fatalf("doctor: %v", err)
	}
	text := out.String()
	for _, name := range []string{"server", "clock", "issuer", "pkce", "device", "proxy", "ca", "keyring", "tokens"} {
		if !strings.Contains(text, "ok   "+name) {
			t.Errorf("text report lacks %q:\n%s", "ok   "+name, text)
		}
	}
	if strings.Contains(text, "eyJ") {
		t.Fatalf("the report shows a JWT:\n%s", text)
	}
}

func TestUsage(t *testing.T) {
	ios, _, _, _ := cmdutil.Test()
	f := &cmdutil.Factory{IO: ios, Now: time.Now, Getenv: func(string) string { return "" }}
	for _, args := range [][]string{
		{"doctor", "--token-store", "vault"},
		{"doctor", "--timeout", "0s"},
		{"doctor", "extra"},
	} {
		cmd := root.NewCmd(f)
		cmd.SetArgs(args)
		if code := cmdutil.ExitCode(cmd.Execute()); code != cmdutil.ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, cmdutil.ExitUsage)
		}
	}
}
