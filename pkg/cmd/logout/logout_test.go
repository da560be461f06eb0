package logout_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/clitest"
	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/sessiontest"
	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/testca"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/root"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

const serverA, serverB = "https://a.example.com", "https://b.example.com"

type fixture struct {
	f           *cmdutil.Factory
	out, errOut *bytes.Buffer
	broker      *sessiontest.Broker
	store       tokenstore.Store
}

// endSession is the fixture broker's end_session_endpoint, with a query of
// its own that the end-session URL must keep.
const endSession = "/logout?realm=dev"

func newFixture(t *testing.T, profiles ...string) *fixture {
	t.Helper()
	b := sessiontest.NewBroker(t)
	f, out, errOut := clitest.Factory(t, b.Server.Client(), map[string]string{"PBENCH_SERVER": serverA})
	store, err := f.TokenStore("file")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range profiles {
		ts := b.TokenSet(p, "refresh-"+p, time.Now(), 5*time.Minute, 4*time.Minute)
		ts.EndSessionEndpoint = b.URL + endSession
		if err := store.Save(p, ts); err != nil {
			t.Fatal(err)
		}
	}
	return &fixture{f: f, out: out, errOut: errOut, broker: b, store: store}
}

func (fx *fixture) logout(args ...string) (int, error) {
	cmd := root.NewCmd(fx.f)
	cmd.SetArgs(append([]string{"logout", "--token-store", "file"}, args...))
	err := cmd.Execute()
	return cmdutil.ExitCode(err), err
}

func (fx *fixture) stored(t *testing.T, profile string) bool {
	t.Helper()
	_, err := fx.store.Load(profile)
	if err != nil && !errors.Is(err, tokenstore.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func TestLogout(t *testing.T) {
	fx := newFixture(t, serverA, serverB)
	if code, err := fx.logout(); code != 0 { // the server from $PBENCH_SERVER
		t.Fatalf("exit %d: %v", code, err)
	}
	if fx.stored(t, serverA) || !fx.stored(t, serverB) {
		t.Fatal("want a's tokens deleted and b's kept")
	}
	if got := fx.broker.Revoked(); !slices.Equal(got, []string{"refresh_token:refresh-" + serverA}) {
		t.Fatalf("revoked %v", got)
	}
	if !strings.Contains(fx.errOut.String(), "logged out of "+serverA) || fx.out.Len() != 0 {
		t.Fatalf("stdout %q, stderr %q", fx.out, fx.errOut)
	}
}

func TestLogoutAll(t *testing.T) {
	fx := newFixture(t, serverA, serverB)
	if code, err := fx.logout("--all"); code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	if fx.stored(t, serverA) || fx.stored(t, serverB) || len(fx.broker.Revoked()) != 2 {
		t.Fatalf("after --all: a stored %v, b stored %v, revoked %v", fx.stored(t, serverA), fx.stored(t, serverB), fx.broker.Revoked())
	}
}

// logout --all revokes each profile's refresh token through that profile's
// ca-cert: two brokers, each with a certificate of its own private CA, and
// both revocations reach their broker.
func TestLogoutAllRevokesThroughEachProfilesCA(t *testing.T) {
	f, _, errOut := clitest.Factory(t, nil, nil) // the real HTTP client
	dir := t.TempDir()
	cfg := "profiles:\n"
	brokers := map[string]*sessiontest.Broker{}
	for i, p := range []string{serverA, serverB} {
		ca := testca.New(t, fmt.Sprintf("Private CA %d", i))
		brokers[p] = sessiontest.NewTLSBroker(t, ca.Issue(t, testca.Options{Hosts: []string{"127.0.0.1"}}).TLS)
		cfg += "  " + p + ":\n    ca-cert: [" + testca.WriteFile(t, dir, fmt.Sprintf("ca%d.pem", i), ca.PEM) + "]\n"
	}
	if err := os.MkdirAll(f.ConfigDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	testca.WriteFile(t, f.ConfigDir(), "config.yaml", []byte(cfg))
	store, err := f.TokenStore("file")
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range brokers {
		if err := store.Save(p, b.TokenSet(p, "refresh-"+p, time.Now(), 5*time.Minute, 4*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	fx := &fixture{f: f, errOut: errOut, store: store}
	if code, err := fx.logout("--all"); code != 0 {
		t.Fatalf("exit %d: %v\n%s", code, err, errOut)
	}
	for p, b := range brokers {
		if !slices.Equal(b.Revoked(), []string{"refresh_token:refresh-" + p}) || fx.stored(t, p) {
			t.Errorf("%s: revoked %v, stored %v; want its refresh token revoked at its broker and deleted\n%s", p, b.Revoked(), fx.stored(t, p), errOut)
		}
	}
	if strings.Contains(errOut.String(), "not revoked") {
		t.Errorf("a revocation failed:\n%s", errOut)
	}
}

func TestLogoutRevocationFails(t *testing.T) {
	fx := newFixture(t, serverA)
	fx.broker.RevokeStatus = http.StatusServiceUnavailable
	if code, err := fx.logout("--server", serverA); code != 0 {
		t.Fatalf("exit %d (%v): a failed revocation must not fail the logout", code, err)
	}
	if fx.stored(t, serverA) {
		t.Fatal("tokens kept after a failed revocation; want them deleted")
	}
	if !strings.Contains(fx.errOut.String(), "warning: "+serverA+": tokens not revoked at the broker") ||
		!strings.Contains(fx.errOut.String(), "503") {
		t.Fatalf("stderr %q: want the revocation failure reported", fx.errOut)
	}
}

func TestLogoutNotLoggedIn(t *testing.T) {
	fx := newFixture(t)
	if code, err := fx.logout("--server", serverB); code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	if !strings.Contains(fx.errOut.String(), "not logged in to "+serverB) {
		t.Fatalf("stderr %q", fx.errOut)
	}
}

func TestLogoutUsage(t *testing.T) {
	fx := newFixture(t, serverA)
	if code, _ := fx.logout("--all", "--server", serverA); code != cmdutil.ExitUsage {
		t.Fatalf("exit %d, want %d", code, cmdutil.ExitUsage)
	}
	if !fx.stored(t, serverA) {
		t.Fatal("a usage error deleted tokens")
	}
}

// edit changes profile's stored token set.
func (fx *fixture) edit(t *testing.T, profile string, change func(*tokenstore.TokenSet)) {
	t.Helper()
	ts, err := fx.store.Load(profile)
	if err != nil {
		t.Fatal(err)
	}
	change(ts)
	if err := fx.store.Save(profile, ts); err != nil {
		t.Fatal(err)
	}
}

// opened records the URLs given to the factory's browser.
func (fx *fixture) opened() *[]string {
	var urls []string
	fx.f.OpenBrowser = func(u string) error {
		urls = append(urls, u)
		return nil
	}
	return &urls
}

// checkEndSessionURL checks that raw is the broker's end-session page for
// the fixture's client: client_id, the endpoint's own query, and no token.
func checkEndSessionURL(t *testing.T, fx *fixture, raw string, ts *tokenstore.TokenSet) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("end-session URL %q: %v", raw, err)
	}
	q := u.Query()
	if got := u.Scheme + "://" + u.Host + u.Path; got != fx.broker.URL+"/logout" ||
		q.Get("client_id") != fx.broker.ClientID || q.Get("realm") != "dev" {
		t.Errorf("end-session URL %q: want %s with client_id=%s and realm=dev", raw, fx.broker.URL+endSession, fx.broker.ClientID)
	}
	if q.Has("id_token_hint") {
		t.Errorf("end-session URL %q carries id_token_hint", raw)
	}
	for _, secret := range []string{ts.AccessToken, ts.RefreshToken, ts.IDToken} {
		if strings.Contains(raw, secret) {
			t.Errorf("end-session URL %q carries a token", raw)
		}
	}
}

func TestLogoutBrowser(t *testing.T) {
	fx := newFixture(t, serverA)
	ts, err := fx.store.Load(serverA)
	if err != nil {
		t.Fatal(err)
	}
	urls := fx.opened()
	if code, err := fx.logout("--server", serverA, "--browser"); code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	if fx.stored(t, serverA) || len(fx.broker.Revoked()) != 1 {
		t.Fatalf("--browser must still revoke and delete: stored %v, revoked %v", fx.stored(t, serverA), fx.broker.Revoked())
	}
	if len(*urls) != 1 {
		t.Fatalf("browser opened %v, want the end-session page once", *urls)
	}
	checkEndSessionURL(t, fx, (*urls)[0], ts)
	stderr := fx.errOut.String()
	if !strings.Contains(stderr, (*urls)[0]) || !strings.Contains(stderr, "confirm the logout in the browser") {
		t.Errorf("stderr %q: want the end-session URL and what to do with it", stderr)
	}
	for _, secret := range []string{ts.AccessToken, ts.RefreshToken, ts.IDToken} {
		if strings.Contains(stderr+fx.out.String(), secret) {
			t.Error("logout --browser printed a token")
		}
	}
}

func TestLogoutBrowserFails(t *testing.T) {
	fx := newFixture(t, serverA)
	fx.f.OpenBrowser = func(string) error { return errors.New("no display") }
	if code, err := fx.logout("--server", serverA, "--browser"); code != 0 {
		t.Fatalf("exit %d (%v): the tokens are gone, a browser that does not open must not fail the logout", code, err)
	}
	stderr := fx.errOut.String()
	if !strings.Contains(stderr, "no display") || !strings.Contains(stderr, "open the address above") || !strings.Contains(stderr, fx.broker.URL+"/logout") {
		t.Errorf("stderr %q: want the browser's failure and the URL to open by hand", stderr)
	}
}

func TestLogoutBrowserCommand(t *testing.T) {
	fx := newFixture(t, serverA)
	ts, err := fx.store.Load(serverA)
	if err != nil {
		t.Fatal(err)
	}
	urls := fx.opened() // must not be used: the command wins
	dir := t.TempDir()
	got := filepath.Join(dir, "url")
	script := filepath.Join(dir, "browser")
	// The command gets its own argument and then the URL.
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s %s' \"$1\" \"$2\" > \""+got+".tmp\" && mv \""+got+".tmp\" \""+got+"\"\n"), 0o700); err != nil { // #nosec G306 -- an executable of the test's own
		t.Fatal(err)
	}
	// --browser-command implies --browser.
	if code, err := fx.logout("--server", serverA, "--browser-command", script+" --new-tab"); code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	if len(*urls) != 0 {
		t.Errorf("the system browser opened %v despite --browser-command", *urls)
	}
	b := waitFile(t, got)
	arg, u, _ := strings.Cut(b, " ")
	if arg != "--new-tab" {
		t.Errorf("browser command's first argument %q, want --new-tab", arg)
	}
	checkEndSessionURL(t, fx, u, ts)
}

// waitFile returns path's content once it exists: the browser command is
// started, not waited for. The bound is for a hung command, not a measure.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		if b, err := os.ReadFile(path); err == nil { // #nosec G304 -- the test's own file
			return string(b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the browser command did not write %s", path)
	return ""
}

func TestLogoutBrowserCommandMissing(t *testing.T) {
	fx := newFixture(t, serverA)
	code, err := fx.logout("--server", serverA, "--browser-command", "/nonexistent/browser")
	if code != cmdutil.ExitUsage || err == nil || !strings.Contains(err.Error(), "/nonexistent/browser") {
		t.Fatalf("exit %d (%v), want %d naming the command", code, err, cmdutil.ExitUsage)
	}
	if !fx.stored(t, serverA) || len(fx.broker.Revoked()) != 0 {
		t.Fatal("a bad --browser-command logged out anyway; want nothing done")
	}
}

// A broker without revocation but with an end-session page (Dex): the
// warning says how to end the session there.
func TestLogoutNoRevocationSuggestsBrowser(t *testing.T) {
	fx := newFixture(t, serverA)
	fx.edit(t, serverA, func(ts *tokenstore.TokenSet) { ts.RevocationEndpoint = "" })
	if code, err := fx.logout("--server", serverA); code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	stderr := fx.errOut.String()
	if !strings.Contains(stderr, "no revocation endpoint") || !strings.Contains(stderr, "--browser") ||
		!strings.Contains(stderr, fx.broker.URL+"/logout?") {
		t.Errorf("stderr %q: want the missing revocation, --browser and the end-session URL", stderr)
	}
}

func TestLogoutNoRevocationWithBrowser(t *testing.T) {
	fx := newFixture(t, serverA)
	fx.edit(t, serverA, func(ts *tokenstore.TokenSet) { ts.RevocationEndpoint = "" })
	urls := fx.opened()
	if code, err := fx.logout("--server", serverA, "--browser"); code != 0 {
		t.Fatalf("exit %d: %v", code, err)
	}
	stderr := fx.errOut.String()
	if len(*urls) != 1 || strings.Contains(stderr, "warning") || !strings.Contains(stderr, "ending the session there instead") {
		t.Errorf("opened %v, stderr %q: want the end-session page opened and no warning", *urls, stderr)
	}
}

// Neither revocation nor an end-session page: the warning stays as it was,
// and --browser says there is nothing to open.
func TestLogoutNoEndSession(t *testing.T) {
	for _, args := range [][]string{nil, {"--browser"}} {
		fx := newFixture(t, serverA)
		fx.edit(t, serverA, func(ts *tokenstore.TokenSet) { ts.RevocationEndpoint, ts.EndSessionEndpoint = "", "" })
		urls := fx.opened()
		if code, err := fx.logout(append([]string{"--server", serverA}, args...)...); code != 0 {
			t.Fatalf("%v: exit %d: %v", args, code, err)
		}
		stderr := fx.errOut.String()
		if len(*urls) != 0 || !strings.Contains(stderr, "tokens not revoked at the broker") || strings.Contains(stderr, "log out with --browser") {
			t.Errorf("%v: opened %v, stderr %q", args, *urls, stderr)
		}
		if len(args) > 0 && !strings.Contains(stderr, "no end-session endpoint") {
			t.Errorf("%v: stderr %q: want --browser to say the broker has no end-session page", args, stderr)
		}
	}
}

// An end-session endpoint that is not https (or http on loopback) is never
// opened nor offered: with or without --browser, the logout goes on.
func TestLogoutHostileEndSession(t *testing.T) {
	for _, bad := range []string{"http://evil.example.com/logout", "https://user:pw@evil.example.com/logout"} {
		for _, args := range [][]string{nil, {"--browser"}} {
			fx := newFixture(t, serverA)
			fx.edit(t, serverA, func(ts *tokenstore.TokenSet) { ts.RevocationEndpoint, ts.EndSessionEndpoint = "", bad })
			urls := fx.opened()
			if code, err := fx.logout(append([]string{"--server", serverA}, args...)...); code != 0 {
				t.Fatalf("%s %v: exit %d: %v", bad, args, code, err)
			}
			stderr := fx.errOut.String()
			if len(*urls) != 0 || strings.Contains(stderr, "open "+bad) || strings.Contains(stderr, "\n"+bad) {
				t.Errorf("%s %v: opened %v, stderr %q", bad, args, *urls, stderr)
			}
			if fx.stored(t, serverA) {
				t.Errorf("%s %v: tokens kept", bad, args)
			}
			if len(args) > 0 && !strings.Contains(stderr, "refusing to open") {
				t.Errorf("%s %v: stderr %q: want the refusal", bad, args, stderr)
			}
		}
	}
}

// damage truncates profile's token file, as a crash or a full disk would.
func (fx *fixture) damage(t *testing.T, profile string) string {
	t.Helper()
	path := fx.store.Location(profile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b[:len(b)/3], 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A damaged token file does not block logout: it is deleted, and the user
// told that nothing could be revoked.
func TestLogoutDamagedFile(t *testing.T) {
	for _, damage := range map[string]func(string) error{
		"truncated": nil,
		"garbage":   func(p string) error { return os.WriteFile(p, []byte("\x00\xffnot json"), 0o600) },
		"empty":     func(p string) error { return os.WriteFile(p, nil, 0o600) },
	} {
		fx := newFixture(t, serverA)
		path := fx.damage(t, serverA)
		if damage != nil {
			if err := damage(path); err != nil {
				t.Fatal(err)
			}
		}
		if code, err := fx.logout("--server", serverA); code != 0 {
			t.Fatalf("exit %d: %v\n%s", code, err, fx.errOut)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("damaged file kept: %v", err)
		}
		if !strings.Contains(fx.errOut.String(), "not revoked") || !strings.Contains(fx.errOut.String(), "logged out of "+serverA) {
			t.Errorf("stderr %q", fx.errOut)
		}
	}
}

// logout --all goes past a damaged profile, a linked file and stray garbage,
// revokes every readable profile, and deletes what is safe to delete.
func TestLogoutAllPastBadProfiles(t *testing.T) {
	const serverC = "https://c.example.com"
	fx := newFixture(t, serverA, serverB, serverC)
	damaged := fx.damage(t, serverA)
	// A link where serverC's file was, to a token file elsewhere.
	linked := fx.store.Location(serverC)
	elsewhere := filepath.Join(t.TempDir(), "elsewhere.json")
	if err := os.Rename(linked, elsewhere); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, linked); err != nil {
		t.Fatal(err)
	}
	code, err := fx.logout("--all")
	if code == 0 {
		t.Errorf("exit 0: the link it could not remove must fail the run (%v)", err)
	}
	if fx.stored(t, serverB) || len(fx.broker.Revoked()) != 1 {
		t.Fatalf("b stored %v, revoked %v: want b revoked past the bad profiles\n%s", fx.stored(t, serverB), fx.broker.Revoked(), fx.errOut)
	}
	if _, err := os.Stat(damaged); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("damaged file kept: %v", err)
	}
	if _, err := os.Lstat(linked); err != nil {
		t.Errorf("link removed: %v", err)
	}
	if _, err := os.Stat(elsewhere); err != nil {
		t.Errorf("link target touched: %v", err)
	}
	stderr := fx.errOut.String()
	for _, want := range []string{"logged out of " + serverB, damaged + " cannot be read", "deleted " + damaged, "symbolic link"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}
