package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/testca"
)

// ca-cert is read as the CLI reads --ca-cert: a CERTIFICATE block that does
// not parse is refused, not skipped, even next to a good one.
func TestConfigCACertRefusesBadPEMBlocks(t *testing.T) {
	dir := t.TempDir()
	good := testca.New(t, "CA").PEM
	bad := "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
	for name, tc := range map[string]struct {
		pem  string
		want string // "" when accepted
	}{
		"good":         {string(good), ""},
		"bad block":    {string(good) + bad, "certificate 2"},
		"no block":     {"just text\n", "no PEM CERTIFICATE block"},
		"key only":     {"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "no PEM CERTIFICATE block"},
		"missing file": {"", "cannot read the CA file"},
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".pem")
			if tc.pem != "" {
				if err := os.WriteFile(file, []byte(tc.pem), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c := DefaultConfig()
			c.Issuer = "https://sso.example.com/realms/pbench"
			c.CACert = file
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), "ca-cert") || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one about ca-cert saying %q", err, tc.want)
			}
		})
	}
}
