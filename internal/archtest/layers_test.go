// Package archtest checks the layering of the module's packages (see
// docs/architecture.md) with go list, so that a change that breaks it fails
// the tests rather than waiting for a review.
package archtest

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/distributed-system-analysis/pbench-auth"

// deps returns the packages pkg depends on, directly or not (test files
// excluded), as go list -deps reports them.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		msg := err.Error()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			msg += ": " + string(ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %s", pkg, msg)
	}
	return strings.Fields(string(out))
}

// The domain packages return typed or sentinel errors and know nothing of
// the command layer: not pkg/cmdutil (exit codes, the Factory), not cobra.
func TestDomainPackagesDoNotImportTheCommandLayer(t *testing.T) {
	for _, p := range []string{"discovery", "login", "session", "tokenstore", "apiclient", "config", "peerurl"} {
		pkg := module + "/pkg/" + p
		for _, d := range deps(t, pkg) {
			if d == module+"/pkg/cmdutil" || strings.HasPrefix(d, module+"/pkg/cmd/") || d == "github.com/spf13/cobra" {
				t.Errorf("%s depends on %s: return a typed or sentinel error and let the command layer map it", pkg, d)
			}
		}
	}
}

// The server (embeddable in other Go services) depends on neither the
// command layer, nor the CLI's domain packages, nor cobra; leaf packages
// such as pkg/buildinfo and pkg/peerurl are fine.
func TestServerDoesNotImportTheCLI(t *testing.T) {
	cli := []string{"cmdutil", "cmd/", "discovery", "login", "session", "tokenstore", "apiclient", "config"}
	for _, d := range deps(t, module+"/server/...") {
		for _, c := range cli {
			if d == "github.com/spf13/cobra" || strings.HasPrefix(d+"/", module+"/pkg/"+strings.TrimSuffix(c, "/")+"/") {
				t.Errorf("server depends on %s", d)
				break
			}
		}
	}
}

// Only the command layer (and its test helper clitest) uses cobra.
func TestCobraOnlyInTheCommandLayer(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !slices.Contains(f[1:], "github.com/spf13/cobra") {
			continue
		}
		if p := f[0]; !strings.HasPrefix(p, module+"/pkg/cmd") && !strings.HasPrefix(p, module+"/cmd/") && p != module+"/internal/testutil/clitest" {
			t.Errorf("%s imports cobra: only the command layer (pkg/cmd/..., pkg/cmdutil, cmd/...) may", p)
		}
	}
}
