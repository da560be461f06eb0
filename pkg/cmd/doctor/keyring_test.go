package doctor

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// Tests of the keyring check against the real OS keyring. The unavailable
// case runs everywhere on Linux (a helper process is pointed at a D-Bus
// socket that does not exist); the available case needs a Secret Service:
//
//	scripts/with-keyring.sh go test -race ./pkg/cmd/doctor/

const helperEnv = "PBENCH_AUTH_DOCTOR_HELPER"

// TestMain lets a test re-run this binary as a helper process: go-keyring
// connects to D-Bus once per process, so another bus needs another process.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(keyringHelper())
	}
	os.Exit(m.Run())
}

// keyringHelper runs the keyring check with the real probe for each store
// kind and prints the results as JSON lines.
func keyringHelper() int {
	probe := func() error { return tokenstore.ProbeKeyring(tokenstore.Options{Timeout: 2 * time.Second}) }
	for _, kind := range []string{tokenstore.KindAuto, tokenstore.KindKeyring, tokenstore.KindFile} {
		res, effective := checkKeyring(probe, kind, os.Getenv("HELPER_DIR"))
		b, _ := json.Marshal(map[string]any{"kind": kind, "result": res, "effective": effective})
		fmt.Println(string(b))
	}
	return 0
}

func TestKeyringUnavailableReal(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the Secret Service is Linux's keyring")
	}
	dir := t.TempDir()
	stdout, _ := testutil.RunHelper(t, []string{testutil.Executable(t)}, helperEnv+"=1", "HELPER_DIR="+dir,
		"DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(dir, "no-bus"))
	want := map[string]struct {
		status    Status
		effective string
		msg       string
	}{
		tokenstore.KindAuto:    {StatusWarn, tokenstore.KindFile, "auto falls back to files (0600) under " + dir},
		tokenstore.KindKeyring: {StatusFail, "", "cannot hold tokens"},
		tokenstore.KindFile:    {StatusOK, tokenstore.KindFile, "not needed"},
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != len(want) {
		t.Fatalf("helper printed %d lines, want %d:\n%s", len(lines), len(want), stdout)
	}
	for _, line := range lines {
		var got struct {
			Kind      string
			Result    Result
			Effective string
		}
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		w := want[got.Kind]
		if got.Result.Status != w.status || got.Effective != w.effective || !strings.Contains(got.Result.Message, w.msg) {
			t.Errorf("--token-store %s: %s %q (store %q), want %s with %q (store %q)",
				got.Kind, got.Result.Status, got.Result.Message, got.Effective, w.status, w.msg, w.effective)
		}
	}
}

func TestKeyringAvailableReal(t *testing.T) {
	if os.Getenv("PBENCH_AUTH_TEST_KEYRING") != "1" {
		t.Skip("needs a Secret Service: run under scripts/with-keyring.sh (PBENCH_AUTH_TEST_KEYRING=1)")
	}
	fx := newFixture(t)
	opts := newOptions(t, fx.srv.URL, nil)
	opts.Flags.TokenStore = ""
	// A keyring service of this test's own: other packages' tests use the
	// same Secret Service at the same time (their probes, their profiles).
	service := fmt.Sprintf("pbench-auth-test-%d", time.Now().UnixNano())
	opts.ProbeKeyring = func() error { return tokenstore.ProbeKeyring(tokenstore.Options{Service: service}) }
	opts.OpenStore = func(kind string) (tokenstore.Store, error) {
		return tokenstore.Open(tokenstore.Options{Kind: kind, Dir: opts.StateDir(), Service: service})
	}
	ks, err := opts.OpenStore(tokenstore.KindKeyring)
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Save(fx.srv.URL, validTokens(fx)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ks.Delete(fx.srv.URL) })

	rep, code, out := doctorRun(t, opts)
	want(t, rep, "keyring", StatusOK, "auto keeps tokens there")
	want(t, rep, "tokens", StatusOK, "keyring service "+service)
	if code != 0 || strings.Contains(out, "SECRET") {
		t.Fatalf("exit %d, or a token in the report:\n%s", code, out)
	}
	// The probe leaves nothing behind: only the profile and its index remain.
	if _, err := exec.LookPath("secret-tool"); err == nil {
		items, _ := exec.Command("secret-tool", "search", "--all", "service", service).CombinedOutput() // #nosec G204 -- the test's own name
		if strings.Contains(string(items), "#probe-") {
			t.Fatalf("the keyring still holds a probe entry:\n%s", items)
		}
	}
}
