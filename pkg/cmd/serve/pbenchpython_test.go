package serve

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// debianPython is Debian's interpreter, which has python3-jwt and
// python3-requests (not a pyenv or virtualenv one earlier on PATH).
const debianPython = "/usr/bin/python3"

// TestPbenchPython runs test/pbench-python/check_tokens.py against serve
// --dev: Pbench's own way of checking tokens (PyJWT, RS256, the realm's
// public_key, audience pbench-server, roles from resource_access) and of
// logging in (the password grant), with Debian's python3-jwt and
// python3-requests.
func TestPbenchPython(t *testing.T) {
	probe := exec.CommandContext(t.Context(), debianPython, "-c", "import jwt, requests, cryptography")
	if out, err := probe.CombinedOutput(); err != nil {
		msg := "needs Debian's python3-jwt, python3-requests and python3-cryptography (scripts/install-deps.sh installs them): " +
			strings.TrimSpace(string(out))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	base, _, _ := startDev(t)
	script, err := filepath.Abs(filepath.Join("..", "..", "..", "test", "pbench-python", "check_tokens.py"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, debianPython, script, base)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("check_tokens.py: %v", err)
	}
}
