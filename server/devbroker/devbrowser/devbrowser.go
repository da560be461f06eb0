// Package devbrowser is a browser stand-in for the development broker's
// pages: it follows redirects, parses the HTML forms and posts them, so the
// authorization code and device flows can run with a plain HTTP client (in
// tests and in "pbench-auth demo") where no real browser is available.
//
// It understands simple pages only: one form with a "password" input to log
// in, and the device flow's consent form with an "approve" button.
package devbrowser

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/distributed-system-analysis/pbench-auth/internal/netutil"
)

const (
	maxSteps     = 10
	maxPageBytes = 1 << 20
)

// ErrLoginRefused is returned when the broker shows its login form again
// with an error (a wrong password).
var ErrLoginRefused = errors.New("login refused")

// Login opens authURL (the broker's authorization URL, as a client would
// send a browser to it), logs in with user and pass, and returns the URL the
// broker finally redirects to, off the broker's origin: the client's
// redirect_uri with code and state. It does not fetch that URL; a caller
// whose client listens there (oauth2cli) GETs it to deliver the code.
//
// If the broker redirects back with an OAuth error, Login returns the URL
// and an error describing it. A wrong password gives an error wrapping
// ErrLoginRefused with the page's message.
func Login(ctx context.Context, client *http.Client, authURL, user, pass string) (string, error) {
	b, err := newBrowser(client, authURL)
	if err != nil {
		return "", err
	}
	p, err := b.get(ctx, authURL)
	for step := 0; step < maxSteps; step++ {
		if err != nil {
			return "", err
		}
		if p.redirect != nil {
			return p.redirect.String(), redirectError(p.redirect)
		}
		f, ok := p.formWith("password")
		if !ok {
			return "", p.noForm("login")
		}
		if step > 0 && p.errorText != "" {
			return "", fmt.Errorf("%w: %s", ErrLoginRefused, p.errorText)
		}
		f.values.Set("username", user)
		f.values.Set("password", pass)
		p, err = b.submit(ctx, f)
	}
	return "", fmt.Errorf("no redirect back to the client after %d pages", maxSteps)
}

// ApproveDevice completes a device authorization (RFC 8628) as its user
// would: it opens verificationURI (preferably verification_uri_complete;
// otherwise userCode is typed in), logs in with user and pass, and approves.
func ApproveDevice(ctx context.Context, client *http.Client, verificationURI, userCode, user, pass string) error {
	b, err := newBrowser(client, verificationURI)
	if err != nil {
		return err
	}
	p, err := b.get(ctx, verificationURI)
	for step := 0; step < maxSteps; step++ {
		if err != nil {
			return err
		}
		if p.redirect != nil {
			return fmt.Errorf("the device page redirected off the broker to %s%s", p.redirect.Host, p.redirect.Path)
		}
		if step > 0 && p.errorText != "" {
			return fmt.Errorf("%w: %s", ErrLoginRefused, p.errorText)
		}
		f, kind := p.deviceForm()
		switch kind {
		case "usercode":
			f.values.Set("user_code", userCode)
		case "login":
			f.values.Set("username", user)
			f.values.Set("password", pass)
		case "consent":
			f.values.Set("action", "approve")
			done, err := b.submit(ctx, f)
			if err != nil {
				return err
			}
			if done.status != http.StatusOK || done.errorText != "" {
				return fmt.Errorf("approval refused (HTTP %d): %s", done.status, done.errorText)
			}
			return nil
		default:
			return p.noForm("device")
		}
		p, err = b.submit(ctx, f)
	}
	return fmt.Errorf("device approval did not finish after %d pages", maxSteps)
}

// browser follows redirects within the broker's origin only.
type browser struct {
	client *http.Client
	origin *url.URL
}

func newBrowser(client *http.Client, start string) (*browser, error) {
	origin, err := url.Parse(start)
	if err != nil || origin.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute URL", start)
	}
	if client == nil {
		client = http.DefaultClient
	}
	c := *client
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxSteps {
			return fmt.Errorf("stopped after %d redirects", maxSteps)
		}
		if !sameOrigin(req.URL, origin) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return &browser{client: &c, origin: origin}, nil
}

func sameOrigin(a, b *url.URL) bool { return a.Scheme == b.Scheme && a.Host == b.Host }

func (b *browser) get(ctx context.Context, u string) (*page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return b.do(req)
}

func (b *browser) submit(ctx context.Context, f *form) (*page, error) {
	if f.method == http.MethodGet {
		u := *f.action
		u.RawQuery = f.values.Encode()
		return b.get(ctx, u.String())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.action.String(), strings.NewReader(f.values.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// do sends req and reads the answer: a redirect off the broker, or a page.
func (b *browser) do(req *http.Request) (*page, error) {
	resp, err := b.client.Do(req)
	if err != nil {
		// The URL may carry a code or a user code: keep it out of the error.
		return nil, fmt.Errorf("%s %s%s: %w", req.Method, req.URL.Host, req.URL.Path, netutil.UnwrapURLError(err))
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		if loc, err := resp.Location(); err == nil && !sameOrigin(loc, b.origin) {
			return &page{status: resp.StatusCode, redirect: loc}, nil
		}
	}
	return readPage(resp)
}

func redirectError(loc *url.URL) error {
	q := loc.Query()
	if q.Get("error") == "" {
		return nil
	}
	return fmt.Errorf("the broker redirected back with error %s: %s", q.Get("error"), q.Get("error_description"))
}

// page is a parsed HTML answer.
type page struct {
	status    int
	redirect  *url.URL // set when the answer redirects off the broker
	where     string   // host and path, for errors
	forms     []*form
	errorText string // text of the element with id="error"
}

type form struct {
	action  *url.URL
	method  string
	values  url.Values
	inputs  map[string]bool // names of the inputs, buttons included
	buttons url.Values      // submit buttons: name → values
}

func readPage(resp *http.Response) (*page, error) {
	p := &page{status: resp.StatusCode, where: resp.Request.URL.Host + resp.Request.URL.Path}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("%s answered HTTP %d with %s instead of a page: %s", p.where, resp.StatusCode, ct, strings.TrimSpace(string(body)))
	}
	// encoding/xml in its lenient mode reads the broker's pages (HTML from
	// html/template: void elements, attributes without values, numeric
	// character references) without golang.org/x/net/html, whose entity
	// table was built at the start of every pbench-auth process (this
	// package is linked into pbench-auth demo).
	dec := xml.NewDecoder(io.LimitReader(resp.Body, maxPageBytes))
	dec.Strict = false
	dec.AutoClose = xml.HTMLAutoClose
	var cur *form
	var errText *strings.Builder // collecting the text of the id="error" element
	errDepth, depth := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", p.where, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			n := element{name: strings.ToLower(t.Name.Local), attrs: t.Attr}
			switch n.name {
			case "form":
				cur = newForm(resp.Request.URL, n)
				p.forms = append(p.forms, cur)
			case "input", "button":
				if cur != nil {
					cur.add(n)
				}
			}
			if errText == nil && attr(n, "id") == "error" {
				errText, errDepth = &strings.Builder{}, depth
			}
		case xml.EndElement:
			if strings.EqualFold(t.Name.Local, "form") {
				cur = nil
			}
			if errText != nil && depth == errDepth {
				p.errorText = strings.TrimSpace(errText.String())
				errText, errDepth = nil, -1
			}
			depth--
		case xml.CharData:
			if errText != nil {
				errText.Write(t)
			}
		}
	}
	return p, nil
}

// element is a start tag: its lower-case name and its attributes.
type element struct {
	name  string
	attrs []xml.Attr
}

func newForm(base *url.URL, n element) *form {
	action, err := base.Parse(attr(n, "action"))
	if err != nil {
		action = base
	}
	method := http.MethodGet
	if strings.EqualFold(attr(n, "method"), "post") {
		method = http.MethodPost
	}
	return &form{action: action, method: method, values: url.Values{}, inputs: map[string]bool{}, buttons: url.Values{}}
}

func (f *form) add(n element) {
	name := attr(n, "name")
	if name == "" {
		return
	}
	f.inputs[name] = true
	typ := strings.ToLower(attr(n, "type"))
	if n.name == "button" && typ == "" {
		typ = "submit"
	}
	switch typ {
	case "submit":
		f.buttons.Add(name, attr(n, "value"))
	case "checkbox", "radio":
		if _, checked := attrOK(n, "checked"); checked {
			f.values.Add(name, attr(n, "value"))
		}
	default:
		f.values.Set(name, attr(n, "value"))
	}
}

func (p *page) formWith(input string) (*form, bool) {
	for _, f := range p.forms {
		if f.inputs[input] {
			return f, true
		}
	}
	return nil, false
}

// deviceForm classifies the device flow page by its form.
func (p *page) deviceForm() (*form, string) {
	for _, f := range p.forms {
		switch {
		case f.inputs["password"]:
			return f, "login"
		case slices.Contains(f.buttons["action"], "approve"):
			return f, "consent"
		case f.inputs["user_code"]:
			return f, "usercode"
		}
	}
	return nil, ""
}

func (p *page) noForm(what string) error {
	if p.errorText != "" {
		return fmt.Errorf("%s (HTTP %d): %s", p.where, p.status, p.errorText)
	}
	return fmt.Errorf("%s (HTTP %d) has no %s form", p.where, p.status, what)
}

func attr(n element, key string) string {
	v, _ := attrOK(n, key)
	return v
}

func attrOK(n element, key string) (string, bool) {
	for _, a := range n.attrs {
		if strings.EqualFold(a.Name.Local, key) && a.Name.Space == "" {
			return a.Value, true
		}
	}
	return "", false
}
