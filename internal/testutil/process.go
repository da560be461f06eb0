package testutil

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Process is a long-running child process of a test (a server, a broker,
// an identity provider). Its stdout and stderr go to a file in the test's
// temporary directory.
type Process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// StartProcess starts cmd (whose Stdout and Stderr it sets) as the process
// name. The process is killed when the test ends, and its output logged if
// the test failed; it is not waited for to be ready.
func StartProcess(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{name: name, cmd: cmd, log: filepath.Join(t.TempDir(), "process.log"), done: make(chan struct{})}
	out, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	// The child keeps its own descriptor.
	defer func() { _ = out.Close() }()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", name, p.Output())
		}
	})
	return p
}

// Output is what the process printed so far.
func (p *Process) Output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// Kill ends the process at once (SIGKILL: an outage, not a shutdown) and
// waits for it to exit. Killing an exited process does nothing.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Result is one finished run of a command.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// Run runs bin args... with exactly the environment env and returns its exit
// code and output. A command that exits non-zero is a Result, not a test
// failure; one that cannot be started, or is still running after two
// minutes (then killed), fails t.
func Run(t testing.TB, env []string, bin string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...) // #nosec G204 -- a binary the test built or chose
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && (!errors.As(err, &ee) || ctx.Err() != nil) {
		t.Fatalf("%s %s: %v", filepath.Base(bin), strings.Join(args, " "), err)
	}
	return Result{Code: cmd.ProcessState.ExitCode(), Stdout: stdout.String(), Stderr: stderr.String()}
}

// Executable is the path of this test binary, for tests that re-run it as
// a helper process (its TestMain acts as the helper when it finds its own
// variable in the environment): go-keyring connects to D-Bus once per
// process, so another bus, or none, needs another process.
func Executable(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// RunHelper runs argv (a helper process, e.g. []string{Executable(t)}, or
// a wrapper script and then it) with env added to the test's environment,
// and returns its stdout and stderr. A helper that fails to start or exits
// non-zero fails t, showing both.
func RunHelper(t testing.TB, argv []string, env ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...) // #nosec G204 -- the test binary itself, or a script the test names
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper: %v\nstdout: %s\nstderr: %s", err, out.String(), errOut.String())
	}
	return out.String(), errOut.String()
}
