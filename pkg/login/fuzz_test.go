package login

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzCallbackGuard sends any query string to the loopback listener's
// callback guard (the part before oauth2cli). Properties: no panic; a
// response carrying a code or an error reaches the login only with this
// login's exact state, otherwise it gets 400 and the login keeps waiting; no
// code from the query ever appears in what the user or the -v trace sees.
// Seeds: testdata/fuzz/FuzzCallbackGuard and the cases below.
func FuzzCallbackGuard(f *testing.F) {
	const state = "S7QKZ2YB4JMXN5TVHC3DLWRGEP" // a rand.Text() value
	for _, seed := range []string{
		"code=abc&state=" + state,
		"code=abc&state=" + state + "&state=other",
		"state=" + state + "&code=abc&code=def",
		"code=abc&state=" + strings.ToLower(state),
		"code=abc&state=" + state + "%00",
		"code=abc",
		"error=access_denied&error_description=nope&state=" + state,
		"error=access_denied",
		"state=" + state,
		"code=&state=",
		"%zz=1;code=x",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		var out bytes.Buffer
		o := &Options{Prompt: &out, Tracef: func(format string, args ...any) { fmt.Fprintf(&out, format+"\n", args...) }}
		g := &callbackGuard{o: o, state: state, tokenURL: "https://sso.example.com/token"}
		reached := false
		next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true })
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.RawQuery = rawQuery
		rec := httptest.NewRecorder()
		g.middleware(next).ServeHTTP(rec, req)

		q, _ := url.ParseQuery(rawQuery)
		isResponse := q.Has("code") || q.Has("error")
		switch {
		case isResponse && q.Get("state") != state && (reached || rec.Code != http.StatusBadRequest):
			t.Fatalf("a response with state %q reached the login (status %d)", q.Get("state"), rec.Code)
		case isResponse && q.Get("state") == state && !reached:
			t.Fatalf("this login's response did not reach the login: %q", rawQuery)
		case !isResponse && !reached:
			t.Fatalf("a request without code or error was not passed on: %q", rawQuery)
		}
		for _, code := range q["code"] {
			if len(code) >= 8 && strings.Contains(out.String(), code) {
				t.Fatalf("the code appears in the output: %q", out.String())
			}
		}
	})
}
