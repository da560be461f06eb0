package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/distributed-system-analysis/pbench-auth/pkg/buildinfo"
)

// uriTemplate is one entry of the "uri" map of Pbench's /api/v1/endpoints:
// an absolute URL with {name} placeholders, and each placeholder's type.
type uriTemplate struct {
	Template string                       `json:"template"`
	Params   map[string]map[string]string `json:"params"`
}

// ownEndpoints are serve's own API endpoints, published in the "uri" map
// under Pbench's names (the path after /api/v1/, "/" replaced by "_").
var ownEndpoints = []struct {
	name, path string
	params     []string // placeholders in path, each of type "string"
}{
	{"endpoints", "/api/v1/endpoints", nil},
	{"user", "/api/v1/user", nil},
}

// keycloakIssuer matches <server>/realms/<realm>.
var keycloakIssuer = regexp.MustCompile(`^(.+)/realms/([^/]+)/?$`)

// openIDSection is the "openid" object of /api/v1/endpoints: Pbench's
// server, realm and client, and the issuer for brokers that are not Keycloak.
func openIDSection(cfg Config) (json.RawMessage, error) {
	server, realm := cfg.Issuer, ""
	if m := keycloakIssuer.FindStringSubmatch(cfg.Issuer); m != nil {
		server, realm = m[1], m[2]
	}
	return json.Marshal(struct {
		Server string `json:"server"`
		Realm  string `json:"realm"`
		Client string `json:"client"`
		Issuer string `json:"issuer"`
	}{server, realm, cfg.ClientID, cfg.Issuer})
}

// ownURIs is the "uri" map of serve's own endpoints at base.
func ownURIs(base string) map[string]uriTemplate {
	m := make(map[string]uriTemplate, len(ownEndpoints))
	for _, e := range ownEndpoints {
		params := map[string]map[string]string{}
		for _, p := range e.params {
			params[p] = map[string]string{"type": "string"}
		}
		m[e.name] = uriTemplate{Template: base + e.path, Params: params}
	}
	return m
}

// serveEndpoints answers GET /api/v1/endpoints: standalone, serve's own
// document; in gateway mode, the upstream's, adjusted (gatewayEndpoints).
func (s *Server) serveEndpoints(w http.ResponseWriter, r *http.Request) {
	scheme, host := s.externalBase(r)
	if s.proxy != nil {
		s.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), endpointsKey{}, scheme+"://"+host)))
		return
	}
	b, err := s.ownEndpointsDocument(scheme + "://" + host)
	if err != nil {
		writeMessage(w, http.StatusInternalServerError, "cannot encode the endpoints document")
		return
	}
	w.Header()["Content-Type"] = jsonContentType
	// #nosec G705 -- JSON made by json.Marshal (HTML-escaped), served as application/json
	_, _ = w.Write(b)
}

// ownEndpointsDocument is serve's own /api/v1/endpoints for clients that
// reached it at base.
func (s *Server) ownEndpointsDocument(base string) ([]byte, error) {
	b, err := json.Marshal(struct {
		Identification string                 `json:"identification"`
		URI            map[string]uriTemplate `json:"uri"`
		OpenID         json.RawMessage        `json:"openid"`
	}{"pbench-auth " + buildinfo.Version(), ownURIs(base), s.openid})
	return append(b, '\n'), err
}

// endpointsKey marks, in a request's context, the gateway's fetch of the
// upstream's endpoints document; its value is the address the client used.
type endpointsKey struct{}

func isEndpointsFetch(r *http.Request) bool {
	_, ok := r.Context().Value(endpointsKey{}).(string)
	return ok
}

// maxEndpointsDocument bounds the upstream's endpoints document (Pbench's
// is about 4 KiB).
const maxEndpointsDocument = 1 << 20

// errUpstreamEndpoints is an endpoints document the gateway cannot use.
type errUpstreamEndpoints struct{ msg string }

func (e *errUpstreamEndpoints) Error() string {
	return "the upstream's /api/v1/endpoints " + e.msg + ": check the upstream (--upstream) is a Pbench server"
}

// rewriteEndpointsRequest makes the gateway's request for the upstream's
// endpoints document: a plain GET of UPSTREAM/api/v1/endpoints, with no
// credentials (the document is public and the client's token was not
// checked) and no Accept-Encoding of the client's (so the answer comes
// unencoded: the upstream transport asks for no compression).
func rewriteEndpointsRequest(out *http.Request, upstreamPath string) {
	out.Method = http.MethodGet
	out.URL.Path = upstreamPath + "/api/v1/endpoints"
	out.URL.RawPath = ""
	out.URL.RawQuery = ""
	out.Header.Del("Authorization")
	out.Header.Del("Cookie")
	out.Header.Del("Accept-Encoding")
	out.Body, out.ContentLength = nil, 0
}

// gatewayEndpoints turns the upstream's answer into the gateway's: the same
// document, with its "openid" section set from serve's configuration, every
// absolute "uri" template pointing at the address the client used (the
// upstream's base path removed), and serve's own endpoints added under names
// the upstream does not use. An upstream that has no such document (404: not
// a Pbench server) gets serve's own; any other failure is the client's 502.
func (s *Server) gatewayEndpoints(resp *http.Response) error {
	base, _ := resp.Request.Context().Value(endpointsKey{}).(string)
	if resp.StatusCode == http.StatusNotFound {
		_ = resp.Body.Close()
		out, err := s.ownEndpointsDocument(base)
		if err != nil {
			return &errUpstreamEndpoints{msg: err.Error()}
		}
		resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
		setBody(resp, out)
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return &errUpstreamEndpoints{msg: "answered " + strconv.Itoa(resp.StatusCode)}
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		return &errUpstreamEndpoints{msg: "came with Content-Encoding " + strconv.Quote(ce)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxEndpointsDocument+1))
	_ = resp.Body.Close()
	if err != nil {
		return &errUpstreamEndpoints{msg: "could not be read: " + err.Error()}
	}
	if len(body) > maxEndpointsDocument {
		return &errUpstreamEndpoints{msg: fmt.Sprintf("is larger than %d bytes", maxEndpointsDocument)}
	}
	out, err := adjustEndpoints(body, s.openid, base, s.upstreamPath)
	if err != nil {
		return &errUpstreamEndpoints{msg: err.Error()}
	}
	setBody(resp, out)
	return nil
}

// setBody replaces the upstream's answer's body with the JSON document out.
func setBody(resp *http.Response, out []byte) {
	h := resp.Header
	for _, name := range []string{"Content-Length", "Etag", "Last-Modified", "Content-Md5"} {
		h.Del(name)
	}
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStore // the answer depends on the address the client used
	h.Set("Content-Length", strconv.Itoa(len(out)))
	resp.ContentLength = int64(len(out))
	resp.Body = io.NopCloser(bytes.NewReader(out))
}

// adjustEndpoints is gatewayEndpoints' rewrite of the document itself.
func adjustEndpoints(body []byte, openid json.RawMessage, base, upstreamPath string) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil || doc == nil {
		return nil, errors.New("is not a JSON object")
	}
	uris := map[string]json.RawMessage{}
	if raw, ok := doc["uri"]; ok {
		if err := json.Unmarshal(raw, &uris); err != nil || uris == nil {
			return nil, errors.New(`has a "uri" that is not an object`)
		}
	}
	for name, raw := range uris {
		var entry map[string]json.RawMessage
		if err := json.Unmarshal(raw, &entry); err != nil || entry == nil {
			return nil, fmt.Errorf("has a uri %q that is not an object", name)
		}
		var tmpl string
		if err := json.Unmarshal(entry["template"], &tmpl); err != nil {
			return nil, fmt.Errorf("has a uri %q without a template string", name)
		}
		b, err := json.Marshal(rebaseTemplate(tmpl, base, upstreamPath))
		if err != nil {
			return nil, err
		}
		entry["template"] = b
		if uris[name], err = json.Marshal(entry); err != nil {
			return nil, err
		}
	}
	for name, t := range ownURIs(base) {
		if _, taken := uris[name]; !taken {
			b, err := json.Marshal(t)
			if err != nil {
				return nil, err
			}
			uris[name] = b
		}
	}
	var err error
	if doc["uri"], err = json.Marshal(uris); err != nil {
		return nil, err
	}
	doc["openid"] = openid
	b, err := json.Marshal(doc)
	return append(b, '\n'), err
}

// rebaseTemplate replaces the scheme and authority of an absolute http(s)
// template with base, and removes the upstream's base path: the upstream
// wrote the template for its own address, the client must come back
// through serve. Anything else (a relative template) is left alone. It
// works on the string, not on a parsed URL, which would escape the
// template's "{" and "}".
func rebaseTemplate(tmpl, base, upstreamPath string) string {
	scheme, rest, ok := strings.Cut(tmpl, "://")
	if !ok || (!strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https")) {
		return tmpl
	}
	path := "/"
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		path = rest[i:]
		if path[0] != '/' {
			path = "/" + path
		}
	}
	if upstreamPath != "" && (path == upstreamPath || strings.HasPrefix(path, upstreamPath+"/")) {
		path = "/" + strings.TrimPrefix(path[len(upstreamPath):], "/")
	}
	return base + path
}
