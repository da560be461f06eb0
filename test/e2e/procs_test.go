//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
)

// need skips the test when a real component is missing, with what to do —
// except in CI (CI=true), where a missing component is a failure: the end to
// end test must not pass by skipping there.
func need(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true: " + msg)
	}
	t.Skip(msg)
}

// binDir holds the pbench-auth binary under test; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildCLI builds the pbench-auth binary under test once per test binary.
var buildCLI = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "pbench-auth-e2e-bin-")
	if err != nil {
		return "", err
	}
	binDir = dir
	return testutil.BuildCLI(dir, false)
})

// daemon starts a long-running process whose output goes to the test log
// when the test fails; it is killed at the end of the test.
func daemon(t *testing.T, name string, env []string, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...) // #nosec G204 -- binaries the test built or found
	// The test's own state directory: serve keeps its default API key
	// database there.
	cmd.Env = append(append(os.Environ(), "XDG_STATE_HOME="+t.TempDir()), env...)
	testutil.StartProcess(t, name, cmd)
}

// waitHTTP polls url until it answers 200, failing after a minute (a bound
// on start-up, not a measurement).
func waitHTTP(t *testing.T, name, url string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s did not become ready at %s: %v", name, url, last)
}

// cli runs the pbench-auth binary as a user would, in env.
type cli struct {
	t   *testing.T
	bin string
	env []string
}

// result is one finished CLI run.
type result struct {
	code           int
	stdout, stderr string
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	tr := testutil.Run(c.t, append(os.Environ(), c.env...), c.bin, args...)
	r := result{code: tr.Code, stdout: tr.Stdout, stderr: tr.Stderr}
	c.t.Logf("pbench-auth %s -> exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

// login is a `pbench-auth login --no-browser` in progress.
type login struct {
	authURL string
	done    chan result
}

// startLogin starts `pbench-auth login --no-browser args...` and returns the
// broker URL it prints, for the test's browser to open.
func (c *cli) startLogin(args ...string) *login {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 3*time.Minute)
	args = append([]string{"login", "--no-browser"}, args...)
	cmd := exec.CommandContext(ctx, c.bin, args...) // #nosec G204 -- the binary under test
	cmd.Env = append(os.Environ(), c.env...)
	var stdout bytes.Buffer
	stderr := &testutil.SyncBuffer{}
	pr, pw := io.Pipe()
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(stderr, pw)
	if err := cmd.Start(); err != nil {
		cancel()
		c.t.Fatalf("start login: %v", err)
	}
	l := &login{done: make(chan result, 1)}
	go func() {
		err := cmd.Wait()
		_ = pw.Close()
		cancel()
		code := 0
		if err != nil {
			code = cmd.ProcessState.ExitCode()
		}
		l.done <- result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	}()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "http://") || strings.HasPrefix(line, "https://") {
			l.authURL = line
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if l.authURL == "" {
		r := <-l.done
		c.t.Fatalf("login printed no URL (exit %d): %s", r.code, r.stderr)
	}
	return l
}

// wait returns the login's result.
func (l *login) wait(t *testing.T) result {
	t.Helper()
	r := <-l.done
	t.Logf("pbench-auth login -> exit %d\nstderr: %s", r.code, r.stderr)
	return r
}
