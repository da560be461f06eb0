package devbroker

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// signingKey is the realm's RS256 key; it implements op.SigningKey and op.Key.
type signingKey struct {
	id              string // RFC 7638 thumbprint of the public key
	private         *rsa.PrivateKey
	publicKeyBase64 string // DER SubjectPublicKeyInfo, as Keycloak's realm info gives it
}

func newSigningKey(k *rsa.PrivateKey) (*signingKey, error) {
	if k.N.BitLen() < 2048 {
		return nil, fmt.Errorf("signing key has %d bits; use an RSA key of at least 2048 bits", k.N.BitLen())
	}
	thumb, err := (&jose.JSONWebKey{Key: &k.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing key thumbprint: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return &signingKey{
		id:              base64.RawURLEncoding.EncodeToString(thumb),
		private:         k,
		publicKeyBase64: base64.StdEncoding.EncodeToString(der),
	}, nil
}

func (k *signingKey) ID() string                                  { return k.id }
func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }

// Key is the private key when used as an op.SigningKey.
func (k *signingKey) Key() any { return k.private }

// publicKey is the JWKS entry (op.Key).
type publicKey struct{ *signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.private.PublicKey }

var _ op.SigningKey = (*signingKey)(nil)
var _ op.Key = publicKey{}

// LoadOrCreateKey reads the PEM RSA private key at path (PKCS #8 or PKCS #1),
// or, if there is no file, generates a 2048-bit key and writes it there
// (PKCS #8, mode 0600), so that tokens and sessions of clients survive a
// restart of the dev broker. An existing file readable by group or others is
// refused, like ssh does.
func LoadOrCreateKey(path string) (*rsa.PrivateKey, error) {
	path = filepath.Clean(path)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	if err := checkPrivate(path); err != nil {
		return nil, err
	}
	return ParseKey(path, data)
}

// ParseKey decodes the PEM RSA private key data (PKCS #8 or PKCS #1) read
// from path, which only names it in errors.
func ParseKey(path string, data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("signing key %s: no PEM block; remove the file to have a new key generated", path)
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", path, err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("signing key %s: %T is not an RSA key", path, k)
		}
		return rk, nil
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %w", path, err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("signing key %s: PEM block %q is not an RSA private key (want PKCS #8 \"PRIVATE KEY\" or PKCS #1 \"RSA PRIVATE KEY\")", path, block.Type)
	}
}

func createKey(path string) (*rsa.PrivateKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // G304: the operator names the key file (--dev-key)
	if err != nil {
		return nil, fmt.Errorf("create signing key file: %w", err)
	}
	err = pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("write signing key %s: %w", path, err)
	}
	return k, nil
}

func checkPrivate(path string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("signing key %s is accessible by others (mode %04o); run: chmod 600 %s", path, perm, path)
	}
	return nil
}
