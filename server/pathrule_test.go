package server

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// The path rule is tested against a model of how upstreams read a path:
// every combination of the readings below. The invariant: if any reading of
// a request path has the protected prefix, serve denies it (401/403) or
// refuses it (400).

// protectedPrefix is the rule the model checks, as segments.
var protectedPrefix = []string{"api", "v1", "admin"}

// A reading step turns a path (already decoded as far as the reading goes)
// into another.
type readingStep struct {
	name string
	f    func(string) string
}

// readingSteps are the optional steps, applied in this order when chosen.
var readingSteps = []readingStep{
	{"nul", func(p string) string { p, _, _ = strings.Cut(p, "\x00"); return p }},   // C strings
	{"backslash", func(p string) string { return strings.ReplaceAll(p, `\`, "/") }}, // IIS, Windows
	{"nfkc", norm.NFKC.String}, // Unicode-normalising frameworks
	{"lower", strings.ToLower}, // case-insensitive routers
	{"fold", func(p string) string { return cases.Fold().String(p) }},
	{"matrix", mapSegments(func(s string) string { s, _, _ = strings.Cut(s, ";"); return s })}, // Tomcat, Spring
	{"format", func(p string) string { // zero-width and soft hyphen dropped
		return strings.Map(func(r rune) rune {
			if unicode.Is(unicode.Cf, r) {
				return -1
			}
			return r
		}, p)
	}},
	{"trimdots", mapSegments(func(s string) string { return strings.TrimRight(s, ". ") })}, // Windows file names
	{"strip", mapSegments(strings.TrimSpace)},                                              // str.strip()
	{"suffix", mapSegments(func(s string) string { // Spring suffix patterns: /admin.json is /admin
		if i := strings.IndexByte(s, '.'); i > 0 {
			return s[:i]
		}
		return s
	})},
	{"dots", resolveDots}, // RFC 3986 dot segments
}

func mapSegments(f func(string) string) func(string) string {
	return func(p string) string {
		segs := strings.Split(p, "/")
		for i := range segs {
			segs[i] = f(segs[i])
		}
		return strings.Join(segs, "/")
	}
}

// resolveDots removes "." and ".." segments as RFC 3986 §5.2.4 does.
func resolveDots(p string) string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		switch s {
		case ".":
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
		}
	}
	return strings.Join(out, "/")
}

// lenientDecode decodes valid %XX escapes and IIS's %uXXXX, and leaves any
// other "%" as it is, as lenient servers do.
func lenientDecode(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '%' {
			if i+5 < len(p) && (p[i+1] == 'u' || p[i+1] == 'U') {
				if n, err := strconv.ParseUint(p[i+2:i+6], 16, 32); err == nil {
					b.WriteRune(rune(n))
					i += 5
					continue
				}
			}
			if i+2 < len(p) {
				if n, err := strconv.ParseUint(p[i+1:i+3], 16, 8); err == nil {
					b.WriteByte(byte(n))
					i += 2
					continue
				}
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// readingHasPrefix reports whether the reading's path starts with the
// protected prefix, with empty segments kept (strict servers) or dropped
// (servers that merge slashes).
func readingHasPrefix(p string) bool {
	segs := strings.Split(p, "/")
	if len(segs) > 0 && segs[0] == "" {
		segs = segs[1:]
	}
	merged := segs[:0:0]
	for _, s := range segs {
		if s != "" {
			merged = append(merged, s)
		}
	}
	return hasSegPrefix(segs) || hasSegPrefix(merged)
}

func hasSegPrefix(segs []string) bool {
	if len(segs) < len(protectedPrefix) {
		return false
	}
	for i, s := range protectedPrefix {
		if segs[i] != s {
			return false
		}
	}
	return true
}

// someReadingIsProtected tries every reading of the escaped path: decoded
// zero, one or two times, then every subset of readingSteps, in order. It
// returns a reading found with the protected prefix, described. Steps that
// change nothing are not branched on, so the search stays small.
func someReadingIsProtected(escaped string) (string, bool) {
	once := lenientDecode(escaped)
	for d, p := range []string{escaped, once, lenientDecode(once)} {
		if d > 0 && p == escaped {
			break
		}
		if how, ok := searchReadings(p, 0, nil); ok {
			return strconv.Itoa(d) + " decodings, then " + strings.Join(how, ","), true
		}
	}
	return "", false
}

func searchReadings(p string, step int, how []string) ([]string, bool) {
	if readingHasPrefix(p) {
		return how, true
	}
	for i := step; i < len(readingSteps); i++ {
		if q := readingSteps[i].f(p); q != p {
			if found, ok := searchReadings(q, i+1, append(how[:len(how):len(how)], readingSteps[i].name)); ok {
				return found, true
			}
		}
	}
	return nil, false
}

// decide is what serve does with a request path for a user without the
// role: 400, 403 (covered by the rule), or 200 (let through).
func decide(rules []roleRule, escaped string) int {
	p, err := parseReqPath(escaped)
	if err != nil {
		return http.StatusBadRequest
	}
	for _, r := range rules {
		if r.prefix.covers(&p) {
			return http.StatusForbidden
		}
	}
	return http.StatusOK
}

var adminRulesOnce = sync.OnceValue(func() []roleRule {
	rules, err := parseRoleRules([]string{"/api/v1/admin=ADMIN"})
	if err != nil {
		panic(err)
	}
	return rules
})

// checkInvariant fails if some reading of escaped is protected and serve
// would let it through without the role.
func checkInvariant(t testing.TB, escaped string) {
	t.Helper()
	if how, protected := someReadingIsProtected(escaped); protected {
		if got := decide(adminRulesOnce(), escaped); got == http.StatusOK {
			t.Errorf("%q reaches the upstream without the role, yet it reads as /api/v1/admin (%s)", escaped, how)
		}
	}
}

// rolePathCases are request paths (as on the request line) for a rule
// /api/v1/admin=ADMIN and what serve answers a user without ADMIN.
var rolePathCases = []struct {
	path string
	want int
}{
	// The issue's list.
	{"/api/v1/ADMIN/x", 403},
	{"/api/v1/Admin/x", 403},
	{"/api/v1/admin;x=1/y", 400},
	{"/api/v1/admin./x", 403},
	{"/api/v1/admin%2e/x", 403},
	{"/api/v1/admin%20/x", 403},
	{"/api/v1/admin%00/x", 400},
	{`/api/v1/admin\x`, 400},
	{"/api/v1/admin%5cx", 400},
	{"/api/v1/%2561dmin/x", 400},
	// More of the class.
	{"/api/v1/admin", 403},
	{"/api/v1/admin/", 403},
	{"/api//v1///admin/x", 403},
	{"/API/V1/ADMIN", 403},
	{"/api/v1/%61dmin", 403},
	{"/api/v1/admin%2fx", 400},
	{"/api%2fv1%2fadmin/x", 400},
	{"/api/v1.%2fjson/admin/x", 400},
	{"/api/v1/admin%252fx", 400},
	{"/api/v1/admin%3bx", 400},
	{"/api/v1/admin%09/x", 400},
	{"/api/v1/admin%0a", 400},
	{"/api/v1/admin%7f", 400},
	{"/api/v1/admin%c2%85", 400},                // NEL, a C1 control
	{"/api/v1/admin%u0041", 400},                // IIS escapes
	{"/api/v1/%c0%ae%c0%ae/admin", 400},         // overlong UTF-8 dots
	{"/api/v1/x/../admin", 400},                 // dot segments
	{"/api/v1/x/%2e%2e/admin", 400},             // encoded dot segments
	{"/api/v1/x/.%2e/admin", 400},               // half encoded
	{"/api/v1/x/..%20/admin", 400},              // Windows trims the space
	{"/api/v1/x/...", 400},                      // Windows: "..." is "."
	{"/api/v1/x/..%e2%80%8b/admin", 400},        // a zero-width space after ".."
	{"/api/v1/x/%ef%bc%8e%ef%bc%8e/admin", 400}, // fullwidth dots: NFKC ".."
	{"/api/v1/x/%e2%80%a5/admin", 400},          // two dot leader: NFKC ".."
	{"/api/v1/admin..", 403},
	{"/api/v1/admin.%20.%20", 403},
	{"/api/v1/admin.json", 403},
	{"/api/v1/admin%20.json/x", 403},
	{"/api/v1/%20admin", 403},
	{"/api/v1/adm%c2%adin", 403},          // soft hyphen
	{"/api/v1/adm%e2%80%8bin", 403},       // zero-width space
	{"/api/v1/%ef%bd%81dmin", 403},        // fullwidth a
	{"/api/v1%ef%bc%8fadmin", 403},        // fullwidth solidus: NFKC "/"
	{"/api/v1/%e2%84%aaey/../admin", 400}, // Kelvin sign, dot segment
	{"/api/v1/admin%ef%bc%85", 400},       // fullwidth percent: NFKC "%"
	{"/api/v1/admin%ef%bc%bcx", 400},      // fullwidth backslash
	{"/api/v1/admin%ef%bc%9bx", 400},      // fullwidth semicolon
	{"/api/v1/%ff", 400},                  // not UTF-8
	{"/api/v1/admin%zz", 400},             // bad escape
	// Not the prefix.
	{"/api/v1/administrator", 200},
	{"/api/v1/admins/x", 200},
	{"/api/v1/adminx.json", 200},
	{"/api/v1/datasets/admin", 200},
	{"/api/v2/admin", 200},
	{"/api/v1/datasets/a%20b.txt", 200},
	{"/api/v1/datasets/%e2%84%96", 200}, // numero sign
	{"/api/v1/datasets/.hidden", 200},
}

// TestRolePathClass checks the table against the rule directly and against
// the model: every protected case must also be one the model protects.
func TestRolePathClass(t *testing.T) {
	for _, c := range rolePathCases {
		if got := decide(adminRulesOnce(), c.path); got != c.want {
			t.Errorf("%s: %d, want %d", c.path, got, c.want)
		}
		checkInvariant(t, c.path)
	}
}

// TestRolePathModelFindsTheIssuesList makes sure the model is not blind: it
// must read each of the issue's paths as the protected prefix.
func TestRolePathModelFindsTheIssuesList(t *testing.T) {
	for _, c := range rolePathCases[:10] {
		if _, ok := someReadingIsProtected(c.path); !ok {
			t.Errorf("the model reads no %q as /api/v1/admin", c.path)
		}
	}
	if _, ok := someReadingIsProtected("/api/v1/administrator"); ok {
		t.Error("the model reads /api/v1/administrator as /api/v1/admin")
	}
}

// TestRolePathClassThroughTheGateway sends the table through the gateway:
// a user without ADMIN gets 400 or 403 and the upstream never sees the
// request; one with ADMIN gets through unless the path is refused.
func TestRolePathClassThroughTheGateway(t *testing.T) {
	up, h := newPbenchGateway(t, func(c *Config) {
		c.RequireRoles = []string{"/api/v1/admin=ADMIN"}
	})
	ti := h.ti
	now := h.clock.Now()
	plain := ti.token(now, func(c map[string]any) { delete(c, "resource_access") })
	admin := ti.token(now, nil)
	for _, c := range rolePathCases {
		before := up.calls()
		status := rawGet(t, h.http.URL, c.path, plain)
		// ServeMux redirects a path it cleans (the new path is checked again)
		// and serve answers 404 for what is not under /api/v1/.
		redirected := status/100 == 3
		if c.want != http.StatusOK {
			if status != c.want && !redirected && status != http.StatusNotFound {
				t.Errorf("without ADMIN %s: %d, want %d", c.path, status, c.want)
			}
			if up.calls() != before {
				t.Errorf("without ADMIN %s reached the upstream", c.path)
			}
		} else if status == http.StatusBadRequest || status == http.StatusForbidden {
			t.Errorf("without ADMIN %s: %d, want it let through", c.path, status)
		}
		adminStatus := rawGet(t, h.http.URL, c.path, admin)
		if c.want == http.StatusBadRequest && adminStatus != http.StatusBadRequest && adminStatus/100 != 3 && adminStatus != http.StatusNotFound {
			t.Errorf("with ADMIN %s: %d, want 400", c.path, adminStatus)
		}
		if c.want == http.StatusForbidden && adminStatus == http.StatusForbidden {
			t.Errorf("with ADMIN %s: 403", c.path)
		}
	}
}

// rawGet sends GET with the path exactly as written on the request line.
func rawGet(t testing.TB, base, rawPath, token string) int {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	req := &http.Request{Method: http.MethodGet, URL: &url.URL{Scheme: u.Scheme, Host: u.Host, Opaque: rawPath}, Host: u.Host, Header: http.Header{}}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", rawPath, err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// FuzzRolePath checks the invariant on any path; the committed corpus
// (testdata/fuzz/FuzzRolePath) holds the variants found so far.
func FuzzRolePath(f *testing.F) {
	for _, c := range rolePathCases {
		f.Add(c.path)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !strings.HasPrefix(p, "/") || len(p) > 64 {
			t.Skip()
		}
		checkInvariant(t, p)
	})
}

// rolePathBase is the path the generated variants start from.
const rolePathBase = "/api/v1/admin/x"

// rolePathInserts are what the generated variants insert into
// rolePathBase: the spellings upstreams read differently.
var rolePathInserts = []string{
	".", "%2e", "%2E", " ", "%20", "+", ";", ";x=1", "%3b", `\`, "%5c", "%00", "%09", "%0a",
	"%25", "%2561", "%252e", "%252f", "/", "%2f", "//", "/./", "/../", "/x/../", "/x/%2e%2e/",
	"..", "...", ".json", "%c2%ad", "%e2%80%8b", "%ef%bc%8e", "%ef%bc%8f", "%e2%80%a8", "%c2%a0",
	"%u002e", "%c0%ae", "%ff", "%e2%80%a5",
}

// rolePathVariant applies ops to rolePathBase: each op is (kind, position,
// choice) — insert rolePathInserts[choice], or change the letter at the
// position: upper case, percent-encoded, fullwidth (NFKC folds it back).
func rolePathVariant(ops []byte) string {
	p := rolePathBase
	for i := 0; i+2 < len(ops); i += 3 {
		pos := int(ops[i+1]) % (len(p) + 1)
		switch ops[i] % 4 {
		case 0:
			p = p[:pos] + rolePathInserts[int(ops[i+2])%len(rolePathInserts)] + p[pos:]
		default:
			if pos == len(p) || p[pos] < 'a' || p[pos] > 'z' {
				continue
			}
			c := p[pos]
			var repl string
			switch ops[i] % 4 {
			case 1:
				repl = string(c - 'a' + 'A')
			case 2:
				repl = fmt.Sprintf("%%%02x", c)
			case 3:
				repl = url.PathEscape(string(rune(0xff41 + int(c-'a')))) // fullwidth a..z
			}
			p = p[:pos] + repl + p[pos+1:]
		}
	}
	return p
}

// TestRolePathGenerated checks the invariant on every variant with one
// insertion or letter change anywhere, and with two of them around the
// protected segment.
func TestRolePathGenerated(t *testing.T) {
	n := 0
	for kind := range 4 {
		for pos := 0; pos <= len(rolePathBase); pos++ {
			for choice := range len(rolePathInserts) {
				checkInvariant(t, rolePathVariant([]byte{byte(kind), byte(pos), byte(choice)}))
				n++
				if kind != 0 {
					break
				}
			}
		}
	}
	// Pairs of ops around and inside "admin" ("/api/v1" is 7 bytes long):
	// inserts before, after and inside it, and its first and last letters
	// changed.
	var ops [][]byte
	for _, pos := range []byte{7, 8, 13, 14} {
		for choice := range len(rolePathInserts) {
			ops = append(ops, []byte{0, pos, byte(choice)})
		}
	}
	for kind := byte(1); kind < 4; kind++ {
		ops = append(ops, []byte{kind, 8, 0}, []byte{kind, 12, 0})
	}
	for _, a := range ops {
		for _, b := range ops {
			checkInvariant(t, rolePathVariant(append(append([]byte{}, b...), a...)))
			n++
		}
	}
	t.Logf("%d variants checked", n)
}

// FuzzRolePathOps checks the invariant on variants of rolePathBase built
// from any sequence of ops (see rolePathVariant): a denser search of the
// class than random strings. Its corpus is testdata/fuzz/FuzzRolePathOps.
func FuzzRolePathOps(f *testing.F) {
	f.Add([]byte{0, 13, 0})
	f.Add([]byte{1, 8, 0, 0, 13, 6})
	f.Add([]byte{2, 8, 0, 0, 13, 1, 3, 9, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 30 {
			t.Skip()
		}
		checkInvariant(t, rolePathVariant(ops))
	})
}
