package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// The path rule. Upstreams read one request path in different ways: some
// fold case, strip ";matrix" parameters or trailing dots and spaces (Windows,
// IIS), treat "\" as "/", decode percent-escapes twice, stop at a NUL,
// normalise Unicode (NFKC), merge "//", or match "/admin.json" as "/admin"
// (suffix patterns). A role rule must hold under every such reading, so
// serve reads a path the way that covers them all, and refuses what it
// cannot read unambiguously:
//
//  1. An encoded slash (%2F: one segment to some servers, two to others),
//     a bad escape, or invalid UTF-8 once decoded: 400. The path is
//     percent-decoded once.
//  2. The decoded path (also after NFKC normalisation) must hold no "%" (a
//     second decoding would change it), no "\", no ";", and no control
//     character (C0, DEL, C1: NUL among them): else 400.
//  3. It is split on "/"; empty segments are dropped (merged slashes). A
//     segment made only of dots and spaces ("." "..", "...", ". ", also
//     with zero-width characters) is
//     refused with 400: dot segments are resolved differently by different
//     servers, and the client can send the resolved path itself.
//  4. Each segment's key is its NFKC form, Unicode case-folded, without
//     format characters (zero-width, soft hyphen), leading spaces, trailing
//     spaces and dots. The key of a segment is also taken from the whole
//     path's NFKC form, in case normalisation produces a "/" (U+FF0F).
//  5. A rule's prefix (ASCII, normalised the same way) covers a path when
//     its keys are the path's first keys, where a path key also matches if
//     its part before any of its dots does ("admin.json" and "admin .x"
//     for "admin": suffix patterns).
//
// Role rules match this way: broadly, so that every reading of a covered
// path is covered. Anonymous rules, which grant, match only the literal
// decoded path: its segments must be the prefix's, exactly.

// errPath is a path refused by the path rule (400).
type errPath struct{ reason string }

func (e *errPath) Error() string {
	return "ambiguous request path: " + e.reason + "; servers read such paths differently, so it is refused: send the path without it"
}

// reqPath is a request path read by the path rule.
type reqPath struct {
	decoded string     // percent-decoded once
	views   [][]string // segment keys; a second view when NFKC adds a "/"
	lazy    bool       // views not computed yet: the path is plain ASCII
}

// parseReqPath applies steps 1–3 of the path rule to an escaped path (the
// form on the request line, r.URL.EscapedPath()).
func parseReqPath(escaped string) (reqPath, error) {
	if plainASCIIPath(escaped) {
		// Fast path (no allocation): nothing to decode or normalise, and
		// case folding is ASCII's. Keys are computed when a rule needs them.
		if err := checkSegments(escaped); err != nil {
			return reqPath{}, err
		}
		return reqPath{decoded: escaped, lazy: true}, nil
	}
	if strings.Contains(escaped, "%2f") || strings.Contains(escaped, "%2F") {
		return reqPath{}, &errPath{reason: "an encoded slash (%2F), one segment to some servers and two to others"}
	}
	decoded, err := url.PathUnescape(escaped)
	if err != nil {
		return reqPath{}, &errPath{reason: "a malformed percent-escape"}
	}
	if !utf8.ValidString(decoded) {
		return reqPath{}, &errPath{reason: "bytes that are not UTF-8 (overlong or invalid sequences)"}
	}
	if err := checkChars(decoded); err != nil {
		return reqPath{}, err
	}
	folded := foldKey(decoded)
	if err := checkChars(folded); err != nil {
		return reqPath{}, err
	}
	if err := checkSegments(decoded); err != nil {
		return reqPath{}, err
	}
	if err := checkSegments(folded); err != nil {
		return reqPath{}, err
	}
	p := reqPath{decoded: decoded, views: [][]string{segmentKeys(decoded, true)}}
	if whole := segmentKeys(folded, false); !equalKeys(whole, p.views[0]) {
		p.views = append(p.views, whole)
	}
	return p, nil
}

// plainASCIIPath reports whether p is printable ASCII without "%", "\" or
// ";": then decoding and NFKC leave it as it is.
func plainASCIIPath(p string) bool {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= 0x20 || c >= 0x7f || c == '%' || c == '\\' || c == ';' {
			return false
		}
	}
	return true
}

// checkChars is step 2.
func checkChars(p string) error {
	for _, r := range p {
		switch {
		case r == '%':
			return &errPath{reason: `a "%" left after decoding (a double-encoded character)`}
		case r == '\\':
			return &errPath{reason: `a backslash`}
		case r == ';':
			return &errPath{reason: `a ";" (matrix or path parameters)`}
		case unicode.IsControl(r):
			return &errPath{reason: "a control character"}
		}
	}
	return nil
}

// checkSegments refuses segments made only of dots, spaces and format
// characters (step 3).
func checkSegments(p string) error {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" {
			continue
		}
		if dotOnly := strings.Trim(seg, ". ") == ""; dotOnly || !isASCII(seg) && trimKey(seg) == "" {
			return &errPath{reason: fmt.Sprintf("the dot segment %q", seg)}
		}
	}
	return nil
}

// foldKey is NFKC, then Unicode case folding, then NFKC again (folding may
// leave a string that is not in NFKC).
func foldKey(s string) string {
	if isASCII(s) {
		return strings.ToLower(s)
	}
	return norm.NFKC.String(cases.Fold().String(norm.NFKC.String(s)))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// segmentKeys splits p into its non-empty segments' keys (step 4); fold
// says whether each segment still needs foldKey.
func segmentKeys(p string, fold bool) []string {
	var keys []string
	for seg := range strings.SplitSeq(p, "/") {
		if fold {
			seg = foldKey(seg)
		}
		if k := trimKey(seg); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// trimKey drops format characters, leading spaces, trailing spaces and dots.
func trimKey(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return unicode.Is(unicode.Cf, r) }) >= 0 {
		s = strings.Map(func(r rune) rune {
			if unicode.Is(unicode.Cf, r) {
				return -1
			}
			return r
		}, s)
	}
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	return strings.TrimRightFunc(s, func(r rune) bool { return r == '.' || unicode.IsSpace(r) })
}

func equalKeys(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// keyViews returns the path's segment keys, computing them on first use.
func (p *reqPath) keyViews() [][]string {
	if p.lazy {
		p.views, p.lazy = [][]string{segmentKeys(strings.ToLower(p.decoded), false)}, false
	}
	return p.views
}

// pathPrefix is a rule's path prefix.
type pathPrefix struct {
	raw     string   // as configured, without a trailing "/"
	keys    []string // role rules: step 4's keys
	literal []string // anonymous rules: the exact non-empty segments
}

// parsePathPrefix checks a configured prefix: it must start with "/" and be
// a path that the path rule accepts, written without percent-escapes.
func parsePathPrefix(s string) (pathPrefix, error) {
	if !strings.HasPrefix(s, "/") {
		return pathPrefix{}, errors.New("the path prefix must start with /")
	}
	if strings.Contains(s, "%") {
		return pathPrefix{}, errors.New("write the path prefix without percent-escapes")
	}
	if !isASCII(s) {
		return pathPrefix{}, errors.New("the path prefix must be ASCII")
	}
	p, err := parseReqPath(s)
	if err != nil {
		return pathPrefix{}, err
	}
	pp := pathPrefix{raw: strings.TrimSuffix(s, "/"), keys: p.keyViews()[0]}
	for seg := range strings.SplitSeq(s, "/") {
		if seg != "" {
			pp.literal = append(pp.literal, seg)
		}
	}
	return pp, nil
}

// covers reports whether the role rule's prefix covers the path (step 5).
func (pp *pathPrefix) covers(p *reqPath) bool {
	for _, keys := range p.keyViews() {
		if coversKeys(pp.keys, keys) {
			return true
		}
	}
	return false
}

func coversKeys(prefix, keys []string) bool {
	if len(keys) < len(prefix) {
		return false
	}
	for i, k := range prefix {
		if !keyMatches(keys[i], k) {
			return false
		}
	}
	return true
}

// keyMatches reports whether the path key is the rule key, or its part
// before one of its dots is (step 5).
func keyMatches(key, rule string) bool {
	if key == rule {
		return true
	}
	for i := len(rule); i < len(key); i++ {
		if key[i] == '.' && trimKey(key[:i]) == rule {
			return true
		}
	}
	return false
}

// grants reports whether the anonymous rule's prefix is, literally, the
// first segments of the decoded path.
func (pp *pathPrefix) grants(p *reqPath) bool {
	i := 0
	for seg := range strings.SplitSeq(p.decoded, "/") {
		if seg == "" {
			continue
		}
		if i == len(pp.literal) {
			return true
		}
		if seg != pp.literal[i] {
			return false
		}
		i++
	}
	return i == len(pp.literal)
}

// anonRule is one --anonymous PREFIX[=METHODS].
type anonRule struct {
	prefix  pathPrefix
	methods []string
}

// defaultAnonymousMethods are the methods of an --anonymous rule that names
// none: reads.
var defaultAnonymousMethods = []string{http.MethodGet, http.MethodHead}

func parseAnonRules(specs []string) ([]anonRule, error) {
	var errs []error
	var rules []anonRule
	for _, s := range specs {
		prefix, methods, hasMethods := strings.Cut(s, "=")
		pp, err := parsePathPrefix(prefix)
		if err != nil {
			errs = append(errs, fmt.Errorf("anonymous %q: %w", s, err))
			continue
		}
		rule := anonRule{prefix: pp, methods: defaultAnonymousMethods}
		if hasMethods {
			rule.methods = nil
			for m := range strings.SplitSeq(methods, ",") {
				m = strings.ToUpper(strings.TrimSpace(m))
				if !isToken(m) {
					errs = append(errs, fmt.Errorf("anonymous %q: want PREFIX or PREFIX=METHOD,METHOD, e.g. /api/v1/datasets=GET,HEAD", s))
					rule.methods = nil
					break
				}
				rule.methods = append(rule.methods, m)
			}
			if rule.methods == nil {
				continue
			}
		}
		rules = append(rules, rule)
	}
	return rules, errors.Join(errs...)
}

// isToken reports whether s is a non-empty HTTP token of letters (methods).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}
