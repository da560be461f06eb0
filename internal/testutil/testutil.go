// Package testutil holds the helpers that several packages' tests share: a
// buffer that goroutines and child processes may write while the test reads
// it, a loopback address reserved for the test (ReserveAddr), and a build of
// the pbench-auth binary.
//
// It is imported only by _test.go files; nothing in the CLI or the server
// depends on it.
package testutil

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
)

// SyncBuffer is a bytes.Buffer safe for concurrent use: a log, stderr, or a
// child process's output written while the test reads it. The zero value is
// ready to use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cliPackage is the import path of the pbench-auth main package.
const cliPackage = "github.com/distributed-system-analysis/pbench-auth/cmd/pbench-auth"

// BuildCLI builds the pbench-auth binary into dir and returns its path,
// with the race detector when race is true (pass the test binary's own
// setting so the processes under test are checked too). It takes no
// testing.T so that TestMain can call it; the caller removes dir.
func BuildCLI(dir string, race bool) (string, error) {
	bin := filepath.Join(dir, "pbench-auth")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	args = append(args, cliPackage)
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil { // #nosec G204 -- fixed arguments
		return "", fmt.Errorf("go build pbench-auth: %w\n%s", err, out)
	}
	return bin, nil
}
