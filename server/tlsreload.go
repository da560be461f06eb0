package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// CertReloader serves the certificate in a pair of PEM files and loads them
// again when they change, so that a certificate can be rotated without a
// restart: plug GetCertificate into tls.Config.
//
// The files are looked at (stat, no read) at most once per second, during a
// handshake. A new pair that does not load (a half-written file, a key that
// does not match) is logged and the old pair kept until the files change
// again.
type CertReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time
	interval          time.Duration

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     fileStamp // of the pair last tried
	lastCheck time.Time
}

// fileStamp identifies the content of both files cheaply.
type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// NewCertReloader loads certFile and keyFile, which must be a valid pair.
func NewCertReloader(certFile, keyFile string, log *slog.Logger) (*CertReloader, error) {
	r := &CertReloader{certFile: certFile, keyFile: keyFile, log: log, now: time.Now, interval: time.Second}
	stamp, err := r.statFiles()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls-cert/tls-key: %w", err)
	}
	r.cert, r.stamp, r.lastCheck = &cert, stamp, r.now()
	return r, nil
}

// GetCertificate returns the current certificate, reloading it first if the
// files changed.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.Sub(r.lastCheck) < r.interval {
		return r.cert, nil
	}
	r.lastCheck = now
	stamp, err := r.statFiles()
	switch {
	case err != nil:
		if r.stamp != (fileStamp{}) { // log once, not at every handshake
			r.log.Warn("cannot look at the TLS certificate files: keeping the current certificate", "err", err)
			r.stamp = fileStamp{}
		}
		return r.cert, nil
	case stamp == r.stamp:
		return r.cert, nil
	}
	r.stamp = stamp
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		r.log.Warn("the TLS certificate files changed but do not load: keeping the current certificate until they change again",
			"tls-cert", r.certFile, "tls-key", r.keyFile, "err", err)
		return r.cert, nil
	}
	r.cert = &cert
	r.log.Info("reloaded the TLS certificate", "tls-cert", r.certFile, "not-after", cert.Leaf.NotAfter)
	return r.cert, nil
}

func (r *CertReloader) statFiles() (fileStamp, error) {
	var s fileStamp
	cf, err := os.Stat(r.certFile)
	if err != nil {
		return s, fmt.Errorf("tls-cert: %w", err)
	}
	kf, err := os.Stat(r.keyFile)
	if err != nil {
		return s, fmt.Errorf("tls-key: %w", err)
	}
	return fileStamp{certMod: cf.ModTime(), keyMod: kf.ModTime(), certSize: cf.Size(), keySize: kf.Size()}, nil
}
