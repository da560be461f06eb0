package server

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/testca"
)

// selfSigned returns a PEM certificate and key for 127.0.0.1 named cn (its
// common name), from a throw-away CA.
func selfSigned(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	leaf := testca.New(t, "tlsreload test CA").Issue(t, testca.Options{Hosts: []string{cn, "127.0.0.1"}})
	return leaf.CertPEM, leaf.KeyPEM
}

// servedCN does one TLS handshake with addr and returns the certificate's CN.
func servedCN(t *testing.T, addr string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // #nosec G402 -- the test reads the served certificate only
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestCertReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	write := func(cert, key []byte) {
		t.Helper()
		if err := os.WriteFile(certFile, cert, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, key, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(selfSigned(t, "first"))
	log := &testutil.SyncBuffer{}
	r, err := NewCertReloader(certFile, keyFile, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	clock := testutil.NewClock(time.Now())
	r.now = clock.Now
	r.lastCheck = clock.Now()

	// As serve does: no static certificate, GetCertificate only.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 5 * time.Second,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}}
	go func() { _ = hs.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = hs.Close() })
	addr := ln.Addr().String()

	if cn := servedCN(t, addr); cn != "first" {
		t.Fatalf("served %q, want first", cn)
	}
	write(selfSigned(t, "second"))
	// The files are looked at no more than once per second.
	if cn := servedCN(t, addr); cn != "first" {
		t.Fatalf("served %q within the check interval, want first", cn)
	}
	clock.Advance(time.Second)
	if cn := servedCN(t, addr); cn != "second" {
		t.Fatalf("served %q after the files changed, want second", cn)
	}

	// A pair that does not load (a certificate with the wrong key) keeps
	// the old one, says so once, and is tried again when the files change.
	thirdCert, thirdKey := selfSigned(t, "third")
	_, otherKey := selfSigned(t, "other")
	write(thirdCert, otherKey)
	clock.Advance(time.Second)
	if cn := servedCN(t, addr); cn != "second" {
		t.Fatalf("served %q with a broken pair, want second (kept)", cn)
	}
	if !strings.Contains(log.String(), "do not load") {
		t.Errorf("the broken pair was not logged:\n%s", log.String())
	}
	write(thirdCert, thirdKey)
	clock.Advance(time.Second)
	if cn := servedCN(t, addr); cn != "third" {
		t.Fatalf("served %q after the pair was fixed, want third", cn)
	}
}

func TestCertReloaderNeedsAValidPair(t *testing.T) {
	dir := t.TempDir()
	cert, _ := selfSigned(t, "a")
	_, key := selfSigned(t, "b")
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	_ = os.WriteFile(certFile, cert, 0o600)
	_ = os.WriteFile(keyFile, key, 0o600)
	if _, err := NewCertReloader(certFile, keyFile, slog.Default()); err == nil || !strings.Contains(err.Error(), "tls-cert/tls-key") {
		t.Fatalf("mismatched pair: %v, want a tls-cert/tls-key error", err)
	}
	if _, err := NewCertReloader(filepath.Join(dir, "nope"), keyFile, slog.Default()); err == nil || !strings.Contains(err.Error(), "tls-cert") {
		t.Fatalf("missing file: %v", err)
	}
}
