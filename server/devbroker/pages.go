package devbroker

import (
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
	"sync"
)

// The pages are deliberately plain: one <form> each, so a browser stand-in
// that parses forms over HTTP (see package devbrowser) can drive them.
//
// The template is parsed on first use, not at package init: this package is
// linked into every pbench-auth process, client commands included, which
// would otherwise all pay for parsing it.
var pageTemplate = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("page").Parse(pageHTML))
})

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}} · {{.Realm}}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:30em;margin:3em auto;padding:0 1em}
.banner{background:#fff3cd;padding:.5em;border:1px solid #e0c060}
.error{color:#a00;font-weight:bold}
label{display:block;margin:.6em 0}
input{font-size:1em}
</style>
</head>
<body>
<p class="banner">DEVELOPMENT BROKER · realm {{.Realm}} · in-memory, not for production</p>
<h1>{{.Title}}</h1>
{{with .Error}}<p id="error" class="error" role="alert">{{.}}</p>{{end}}
{{with .Message}}<p id="message">{{.}}</p>{{end}}
{{- if eq .Form "login"}}
<form id="login" method="post" action="{{.Action}}">
{{range $name, $value := .Hidden}}<input type="hidden" name="{{$name}}" value="{{$value}}">
{{end -}}
<label>Username <input name="username" value="{{.Username}}" autocomplete="username" autofocus required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>
{{- else if eq .Form "usercode"}}
<form id="usercode" method="get" action="{{.Action}}">
<label>Code shown by your device <input name="user_code" autocomplete="off" autofocus required></label>
<button type="submit">Continue</button>
</form>
{{- else if eq .Form "consent"}}
<form id="consent" method="post" action="{{.Action}}">
{{range $name, $value := .Hidden}}<input type="hidden" name="{{$name}}" value="{{$value}}">
{{end -}}
<button type="submit" name="action" value="approve">Approve</button>
<button type="submit" name="action" value="deny">Deny</button>
</form>
{{- else if eq .Form "logout"}}
<form id="logout" method="post" action="{{.Action}}">
{{range $name, $value := .Hidden}}<input type="hidden" name="{{$name}}" value="{{$value}}">
{{end -}}
<button type="submit">Logout</button>
</form>
{{- end}}
</body>
</html>
`

type page struct {
	Title    string
	Realm    string
	Error    string
	Message  string
	Form     string // "", "login", "usercode", "consent" or "logout"
	Action   string
	Hidden   map[string]string
	Username string
}

func (b *Broker) render(w http.ResponseWriter, status int, p page) {
	p.Realm = b.realm
	b.writeHTML(w, status, pageTemplate(), p, "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
}

// writeHTML renders t with data and answers it with the given
// Content-Security-Policy. A policy without frame-ancestors is for a page
// meant to be framed (keycloak-js's iframes); every other page also gets
// X-Frame-Options DENY.
func (b *Broker) writeHTML(w http.ResponseWriter, status int, t *template.Template, data any, csp string) {
	var buf strings.Builder
	if err := t.Execute(&buf, data); err != nil {
		b.log.Error("render page", "page", t.Name(), "err", err)
		http.Error(w, "cannot render page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	if strings.Contains(csp, "frame-ancestors 'none'") {
		h.Set("X-Frame-Options", "DENY")
	}
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(buf.String()))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

const maxFormBytes = 64 << 10

// parsePage admits the methods of a page with a form, GET (show it) and
// POST (submit it), answering 405 to any other, then reads the query and
// the form body (parseForm); false if it already answered.
func parsePage(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return false
	}
	return parseForm(w, r)
}

// parseForm reads a small form body; false if it already answered.
func parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "cannot read the form: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}
