package devbroker_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/server/devbroker"
)

func TestParseUserSpec(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want devbroker.User
		err  bool
	}{
		{spec: "admin:admin:ADMIN", want: devbroker.User{Name: "admin", Password: "admin", Roles: []string{"ADMIN"}}},
		{spec: "user:user", want: devbroker.User{Name: "user", Password: "user"}},
		{spec: "ops:pw:ADMIN, OPS,,ADMIN", want: devbroker.User{Name: "ops", Password: "pw", Roles: []string{"ADMIN", "OPS"}}},
		{spec: "user:pw:", want: devbroker.User{Name: "user", Password: "pw"}},
		{spec: "alice", err: true},
		{spec: ":s3cr3t", err: true},
		{spec: "alice:", err: true},
		{spec: "alice:s3cr3t:ex:ROLE", err: true},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := devbroker.ParseUserSpec(tc.spec)
			if tc.err {
				if err == nil {
					t.Fatalf("ParseUserSpec(%q) = %+v, want an error", tc.spec, got)
				}
				if parts := strings.Split(tc.spec, ":"); len(parts) > 1 && parts[1] != "" && strings.Contains(err.Error(), parts[1]) {
					t.Errorf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil || got.Name != tc.want.Name || got.Password != tc.want.Password || !slices.Equal(got.Roles, tc.want.Roles) {
				t.Errorf("ParseUserSpec(%q) = %+v, %v; want %+v", tc.spec, got, err, tc.want)
			}
		})
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	key := sharedKey(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024) //nolint:gosec // the point: a key too small is refused
	if err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string]devbroker.Options{
		"no issuer":       {},
		"relative issuer": {Issuer: "/realms/x"},
		"ftp issuer":      {Issuer: "ftp://127.0.0.1/realms/x"},
		"issuer query":    {Issuer: "http://127.0.0.1/realms/x?a=b"},
		"duplicate user":  {Issuer: "http://127.0.0.1/realms/x", Users: []devbroker.User{{Name: "a", Password: "1"}, {Name: "a", Password: "2"}}},
		"empty password":  {Issuer: "http://127.0.0.1/realms/x", Users: []devbroker.User{{Name: "a"}}},
		"small key":       {Issuer: "http://127.0.0.1/realms/x", SigningKey: small},
	} {
		t.Run(name, func(t *testing.T) {
			if opts.SigningKey == nil {
				opts.SigningKey = key
			}
			if _, err := devbroker.New(opts); err == nil {
				t.Errorf("New(%s) succeeded", name)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	b, err := devbroker.New(devbroker.Options{Issuer: "http://127.0.0.1:9/realms/lab/", SigningKey: sharedKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	if b.Issuer() != "http://127.0.0.1:9/realms/lab" || b.Realm() != "lab" || b.ClientID() != "pbench-client" {
		t.Errorf("issuer %s, realm %s, client %s", b.Issuer(), b.Realm(), b.ClientID())
	}
	if id, secret := b.IntrospectionCredentials(); id != "pbench-server" || len(secret) < 20 {
		t.Errorf("introspection client %s with a %d-character secret", id, len(secret))
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dev-key.pem")

	created, err := devbroker.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	loaded, err := devbroker.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !created.Equal(loaded) {
		t.Error("the key read back is not the key written")
	}

	// A PKCS #1 key (openssl's traditional format) is accepted too.
	pkcs1 := filepath.Join(dir, "pkcs1.pem")
	writeFile(t, pkcs1, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(created)}), 0o600)
	if k, err := devbroker.LoadOrCreateKey(pkcs1); err != nil || !k.Equal(created) {
		t.Errorf("PKCS #1 key: %v", err)
	}

	for name, tc := range map[string]struct {
		data []byte
		mode os.FileMode
		want string
	}{
		"readable by others": {pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(created)}), 0o644, "chmod 600"},
		"not PEM":            {[]byte("hello"), 0o600, "no PEM block"},
		"not a private key":  {pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), 0o600, "not an RSA private key"},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
			writeFile(t, p, tc.data, tc.mode)
			_, err := devbroker.LoadOrCreateKey(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadOrCreateKey: %v, want an error saying %q", err, tc.want)
			}
		})
	}
	if _, err := devbroker.LoadOrCreateKey(filepath.Join(dir, "missing-dir", "k.pem")); err == nil {
		t.Error("a key in a missing directory was created")
	}
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is masked by the umask
		t.Fatal(err)
	}
}
