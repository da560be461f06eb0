package login

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/distributed-system-analysis/pbench-auth/internal/errmark"
	"github.com/distributed-system-analysis/pbench-auth/internal/netutil"
)

// checkLoopback refuses a listen address other machines could reach: the
// authorization code arrives there.
func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return errmark.With(ErrInvalidListenAddress, fmt.Errorf("--listen-address %q: want HOST:PORT, such as 127.0.0.1:8000 or [::1]:0", addr))
	}
	if !netutil.IsLoopback(host) {
		return errmark.With(ErrInvalidListenAddress, fmt.Errorf("--listen-address %q is not a loopback address: the login's callback must be reachable "+
			"from this machine only; use 127.0.0.1:PORT, [::1]:PORT or localhost:PORT", addr))
	}
	return nil
}

// pickListenAddress tries each candidate in order and returns the first one
// that can be bound, with its port resolved (a ":0" candidate becomes the
// free port the system chose), and the matching redirect URI. Each busy
// candidate is reported on prompt before the next is tried.
//
// The probe's socket is closed before oauth2cli binds the same address;
// another process taking that port in between makes the login fail with
// oauth2cli's "could not start a local server", never listen elsewhere.
func pickListenAddress(candidates []string, prompt io.Writer) (addr, redirectURI string, err error) {
	var failures []string
	for i, c := range candidates {
		l, err := net.Listen("tcp", c)
		if err != nil {
			failures = append(failures, err.Error())
			if i+1 < len(candidates) {
				_, _ = fmt.Fprintf(prompt, "pbench-auth: cannot listen on %s (%v); trying %s\n",
					c, unwrapOpError(err), candidates[i+1])
			}
			continue
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		host, _, _ := net.SplitHostPort(c)
		addr = net.JoinHostPort(host, strconv.Itoa(port))
		return addr, "http://" + addr + CallbackPath, nil
	}
	return "", "", fmt.Errorf("cannot listen on any --listen-address (%s): %w; free one of these ports or give another --listen-address",
		strings.Join(candidates, ", "), errors.New(strings.Join(failures, "; ")))
}

// unwrapOpError shortens "listen tcp 127.0.0.1:8000: bind: address already
// in use" to "bind: address already in use"; the address is said already.
func unwrapOpError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}
