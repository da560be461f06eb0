package serve

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// ownBrokerClient is the HTTP client of serve --dev's requests to its own
// embedded broker (discovery, JWKS, introspection). They never leave the
// process: a request for the issuer's scheme and host is answered by h (the
// mux the listener serves, broker included) directly. So the server trusts
// its own broker whatever certificate it serves — a private CA's, one for
// another name — and has its keys as soon as it starts, without a TLS
// handshake with itself. Requests for any other host are refused: with --dev
// the broker is this process.
func ownBrokerClient(issuer string, h http.Handler) (*http.Client, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("serve --dev: issuer %q: not an absolute URL", issuer)
	}
	return &http.Client{
		Transport: &inProcess{scheme: u.Scheme, host: u.Host, h: h},
		Timeout:   15 * time.Second, // as serve's default client: a handler that hangs must not hang the key refresh
		// The broker's discovery and keys never redirect; a redirect would
		// leave the process.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// inProcess is an http.RoundTripper that serves requests for one scheme and
// host with a handler in this process.
type inProcess struct {
	scheme, host string
	h            http.Handler
}

func (t *inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != t.scheme || req.URL.Host != t.host {
		return nil, fmt.Errorf("serve --dev fetches only from its own broker at %s://%s, not %s://%s",
			t.scheme, t.host, req.URL.Scheme, req.URL.Host)
	}
	in := req.Clone(req.Context())
	in.RequestURI = req.URL.RequestURI()
	in.Host = req.URL.Host
	in.RemoteAddr = "127.0.0.1:0" // this process
	if in.Body == nil {
		in.Body = http.NoBody
	}
	if t.scheme == "https" {
		in.TLS = &tls.ConnectionState{HandshakeComplete: true, ServerName: req.URL.Hostname()}
	}
	w := &memResponse{header: make(http.Header)}
	t.h.ServeHTTP(w, in)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return &http.Response{
		Status:        strconv.Itoa(w.status) + " " + http.StatusText(w.status),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.header,
		Body:          io.NopCloser(bytes.NewReader(w.body.Bytes())),
		ContentLength: int64(w.body.Len()),
		Request:       req,
	}, nil
}

// memResponse is the http.ResponseWriter of an in-process request: the
// broker's answers here are small documents (discovery, JWKS, introspection),
// read whole by the caller, which bounds them.
type memResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *memResponse) Header() http.Header { return w.header }

func (w *memResponse) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *memResponse) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}
