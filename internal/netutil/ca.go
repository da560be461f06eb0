package netutil

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// ErrNoCertificates is a file without any PEM CERTIFICATE block.
var ErrNoCertificates = errors.New("no PEM CERTIFICATE block")

// ReadCertificates returns the certificates of a PEM file. Blocks of other
// types are skipped; a CERTIFICATE block that does not parse is an error, and
// so is a file without any.
func ReadCertificates(file string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(file) // #nosec G304 -- a CA file the user or operator named
	if err != nil {
		return nil, fmt.Errorf("cannot read the CA file: %w", err)
	}
	var certs []*x509.Certificate
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", file, len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds %w: give a PEM file of CA certificates", file, ErrNoCertificates)
	}
	return certs, nil
}

// CertPool returns the system's CAs plus every certificate of files (see
// ReadCertificates), and how many were added.
func CertPool(files ...string) (*x509.CertPool, int, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	n := 0
	for _, file := range files {
		certs, err := ReadCertificates(file)
		if err != nil {
			return nil, 0, err
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
		n += len(certs)
	}
	return pool, n, nil
}
