package cmdutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/distributed-system-analysis/pbench-auth/internal/netutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/config"
)

// CACertEnv names PEM files of CA certificates (a path list, like $PATH) that
// the CLI trusts besides the system's, when --ca-cert is not given.
const CACertEnv = "PBENCH_AUTH_CA_CERT"

// DefaultHTTPTimeout bounds each request of the CLI's HTTP client.
const DefaultHTTPTimeout = 60 * time.Second

// TLSFlags are the root command's flags for the TLS of every connection the
// CLI makes (Pbench server and broker alike).
type TLSFlags struct {
	// CACerts is --ca-cert, repeatable: PEM files of CAs trusted besides
	// the system's.
	CACerts []string
	// InsecureSkipTLSVerify is --insecure-skip-tls-verify. Dangerous: anyone
	// on the network path can then read the tokens and answer for the server.
	InsecureSkipTLSVerify bool
}

// AddTLSFlags registers --ca-cert and --insecure-skip-tls-verify, bound to
// f.TLS, on every subcommand of root that has a --server flag: the commands
// that connect to a Pbench server and its broker. Call it after the
// subcommands are added.
func AddTLSFlags(root *cobra.Command, f *Factory) {
	for _, c := range root.Commands() {
		AddTLSFlags(c, f) // subcommands, e.g. key create
		fl := c.Flags()
		if fl.Lookup("server") == nil || fl.Lookup("ca-cert") != nil {
			continue
		}
		fl.StringArrayVar(&f.TLS.CACerts, "ca-cert", nil,
			"PEM file of CA certificates to trust besides the system's, for the server and the broker (repeatable; default $"+CACertEnv+", else ca-cert of the server's profile in the config file)")
		fl.BoolVar(&f.TLS.InsecureSkipTLSVerify, "insecure-skip-tls-verify", false,
			"DANGEROUS, for test setups only: do not verify TLS certificates (anyone on the path can read your tokens)")
		fl.BoolVar(&f.AllowInsecureHTTP, "allow-insecure-http", false,
			"DANGEROUS, for test setups only: allow plain http to a server or broker that is not on this machine (tokens cross the network in clear; warned on every use; also $"+AllowInsecureHTTPEnv+"=1)")
	}
}

// caSource is where the CA files of this invocation come from, for messages.
type caSource struct {
	files []string
	from  string // "--ca-cert", "$PBENCH_AUTH_CA_CERT", "ca-cert of profile ..."
	// explicit is true for --ca-cert and the environment: this run's own
	// choice, which --insecure-skip-tls-verify contradicts.
	explicit bool
}

const insecureWarning = "warning: --insecure-skip-tls-verify: TLS certificates are not verified; anyone on the network path can read and change this traffic, tokens included. Use --ca-cert FILE instead."

// caFiles resolves the CA files: --ca-cert, else $PBENCH_AUTH_CA_CERT, else
// the ca-cert list of profile (if any). The first source that names files
// wins; they are not merged.
func (f *Factory) caFiles(profile string) (caSource, error) {
	if len(f.TLS.CACerts) > 0 {
		return caSource{files: f.TLS.CACerts, from: "--ca-cert", explicit: true}, nil
	}
	if env := f.Getenv(CACertEnv); env != "" {
		var files []string
		for _, p := range filepath.SplitList(env) {
			if p != "" {
				files = append(files, p)
			}
		}
		return caSource{files: files, from: "$" + CACertEnv, explicit: true}, nil
	}
	if profile == "" {
		return caSource{}, nil
	}
	cfg, err := config.Load(f.ConfigDir())
	if err != nil {
		return caSource{}, &UsageError{Err: err}
	}
	if p, ok := cfg.Profiles[profile]; ok && len(p.CACerts) > 0 {
		return caSource{files: p.CACerts, from: fmt.Sprintf("ca-cert of profile %s in %s", profile, filepath.Join(f.ConfigDir(), "config.yaml"))}, nil
	}
	return caSource{}, nil
}

// CATrust is what the CLI's TLS trusts, for doctor.
type CATrust struct {
	// Summary is e.g. "the system's CAs" or "the system's CAs + 2
	// certificates from --ca-cert (a.pem, b.pem)".
	Summary string
	// Insecure is --insecure-skip-tls-verify: nothing is verified.
	Insecure bool
}

// CATrust reads the CA files as the HTTP client of profile would, and fails
// as it would.
func (f *Factory) CATrust(profile string) (CATrust, error) {
	if f.TLS.InsecureSkipTLSVerify {
		return CATrust{Summary: "nothing: --insecure-skip-tls-verify turns certificate verification off", Insecure: true}, nil
	}
	src, err := f.caFiles(profile)
	if err != nil || len(src.files) == 0 {
		return CATrust{Summary: "the system's CAs"}, err
	}
	_, n, err := loadCAs(src)
	if err != nil {
		return CATrust{}, err
	}
	return CATrust{Summary: fmt.Sprintf("the system's CAs + %d certificates from %s (%s)", n, src.from, strings.Join(src.files, ", "))}, nil
}

// HTTPClients returns the real HTTPClient of f (New wires it; tests may
// too): it builds the client of each profile once, reading f's environment,
// flags and config file, and warns about --insecure-skip-tls-verify once.
func (f *Factory) HTTPClients() func(profile string) (*http.Client, error) {
	var (
		mu    sync.Mutex
		built = map[string]func() (*http.Client, error){}
		warn  sync.Once
	)
	return func(profile string) (*http.Client, error) {
		mu.Lock()
		b, ok := built[profile]
		if !ok {
			b = sync.OnceValues(func() (*http.Client, error) { return f.newHTTPClient(profile, &warn) })
			built[profile] = b
		}
		mu.Unlock()
		return b()
	}
}

// newHTTPClient builds the client of profile's outgoing connections: the
// system's CAs plus the configured ones, HTTPS_PROXY/HTTP_PROXY/NO_PROXY from
// the environment (never for loopback hosts), and TLS errors that say which
// host, what failed and which flag fixes it.
func (f *Factory) newHTTPClient(profile string, warn *sync.Once) (*http.Client, error) {
	src, err := f.caFiles(profile)
	if err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case f.TLS.InsecureSkipTLSVerify && src.explicit:
		return nil, Usagef("--insecure-skip-tls-verify cannot be used with %s: trust the CA, or turn verification off, not both", src.from)
	case f.TLS.InsecureSkipTLSVerify:
		// A profile's ca-cert is a standing setting; the flag is this run's choice.
		tlsConf.InsecureSkipVerify = true // #nosec G402 -- asked for explicitly, and warned about on every use
		warn.Do(func() { _, _ = fmt.Fprintln(f.IO.ErrOut, insecureWarning) })
	case len(src.files) > 0:
		pool, _, err := loadCAs(src)
		if err != nil {
			return nil, err
		}
		tlsConf.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	tr.Proxy = netutil.ProxyFunc(f.Getenv)
	// Plain http to a host that is not loopback is refused (or warned
	// about) for every request, redirects and broker endpoints included.
	return &http.Client{Timeout: DefaultHTTPTimeout, Transport: &plainHTTPTransport{base: &tlsErrorTransport{base: tr}, guard: f.plainHTTP()}}, nil
}

// loadCAs returns the system's pool plus every certificate in src's files,
// and how many were added. Each file must hold at least one certificate.
func loadCAs(src caSource) (*x509.CertPool, int, error) {
	pool, n, err := netutil.CertPool(src.files...)
	if err != nil {
		return nil, 0, Usagef("%s: %w", src.from, err)
	}
	return pool, n, nil
}

// TLSError is a failed TLS handshake, worded for people.
type TLSError struct {
	// Host is the host:port the CLI connected to.
	Host string
	// Problem says what failed, e.g. "its certificate is signed by an
	// unknown authority".
	Problem string
	// Fix says what to do.
	Fix string
	Err error
}

func (e *TLSError) Error() string {
	return fmt.Sprintf("TLS connection to %s failed: %s: %s", e.Host, e.Problem, e.Fix)
}

func (e *TLSError) Unwrap() error { return e.Err }

// Timeout and Temporary make a TLSError a net.Error: the server could not be
// reached safely, which commands report with cmdutil.ExitNetwork.
func (e *TLSError) Timeout() bool { return false }

// Temporary is false: trying again does not help.
func (e *TLSError) Temporary() bool { return false }

// tlsErrorTransport turns certificate verification errors into TLSErrors.
type tlsErrorTransport struct{ base http.RoundTripper }

func (t *tlsErrorTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, describeTLSError(req.URL.Host, err)
	}
	return resp, nil
}

const caFix = "if it uses an internal CA, pass that CA's certificate with --ca-cert FILE (or $" + CACertEnv + ", or ca-cert in the server's profile of the config file)"

// describeTLSError wraps err in a TLSError when it is a certificate problem;
// other errors pass unchanged.
func describeTLSError(host string, err error) error {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &unknown):
		return &TLSError{Host: host, Err: err,
			Problem: "its certificate is signed by an unknown authority" + subject(unknown.Cert),
			Fix:     caFix}
	case errors.As(err, &hostname):
		return &TLSError{Host: host, Err: err,
			Problem: fmt.Sprintf("its certificate is not valid for the name %q (%s)", hostname.Host, certNames(hostname.Certificate)),
			Fix:     "use the host name the certificate was issued for (--server, or the issuer the server names), or have the certificate reissued"}
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return &TLSError{Host: host, Err: err,
			Problem: "its certificate has expired or is not valid yet" + validity(invalid.Cert),
			Fix:     "the server's operator must renew the certificate; also check this machine's clock"}
	case errors.As(err, &invalid):
		return &TLSError{Host: host, Err: err,
			Problem: "its certificate is invalid: " + invalid.Error(),
			Fix:     "the server's operator must fix the certificate chain"}
	}
	return err
}

func subject(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf(" (issuer %q)", c.Issuer.String())
}

func certNames(c *x509.Certificate) string {
	if c == nil || len(c.DNSNames)+len(c.IPAddresses) == 0 {
		return "it names no host"
	}
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return "it is for " + strings.Join(names, ", ")
}

func validity(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf(" (valid from %s to %s)", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
}
