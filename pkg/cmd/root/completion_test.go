package root

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/clitest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// The shell completes --server with the servers the user configured and
// the ones the token store holds tokens for, through cobra's __complete.
func TestServerFlagCompletion(t *testing.T) {
	f, out, _ := clitest.Factory(t, nil, map[string]string{
		"PBENCH_SERVER":           "https://Env.example.com/",
		"PBENCH_AUTH_TOKEN_STORE": "file",
	})
	cfg := f.ConfigDir()
	if err := os.MkdirAll(cfg, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg, "config.yaml"), []byte(
		"default-server: https://default.example.com\nprofiles:\n  https://ca.example.com:\n    ca-cert: [/ca.pem]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := tokenstore.Open(tokenstore.Options{Kind: "file", Dir: f.StateDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save("http://127.0.0.1:8080", &tokenstore.TokenSet{Issuer: "http://127.0.0.1:8080/realms/x", AccessToken: "a"}); err != nil {
		t.Fatal(err)
	}

	for _, command := range []string{"status", "call", "login", "logout", "token", "doctor"} {
		cmd := NewCmd(f)
		cmd.SetArgs([]string{"__complete", command, "--server", ""})
		out.Reset()
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		got := strings.Fields(out.String())
		want := []string{"http://127.0.0.1:8080", "https://ca.example.com", "https://default.example.com", "https://env.example.com", ":4"}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s --server completions = %q, want %q", command, got, want)
		}
	}

	cmd := NewCmd(f)
	cmd.SetArgs([]string{"__complete", "status", "--token-store", ""})
	out.Reset()
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(out.String()); strings.Join(got, " ") != "auto keyring file :4" {
		t.Errorf("--token-store completions = %q", got)
	}
}
