package devbroker

import (
	"crypto/rand"
	"html/template"
	"net/http"
	"sync"
	"time"
)

// The browser's single sign-on session, as Keycloak keeps it: an HttpOnly
// identity cookie holding a secret of the session, and a session cookie that
// scripts may read, holding the session id (session_state, which is also in
// every token), for the login status iframe to compare with the client's.
const (
	identityCookie   = "KEYCLOAK_IDENTITY"
	sessionCookie    = "KEYCLOAK_SESSION"
	thirdPartyCookie = "KEYCLOAK_3P_COOKIE"
)

// cookie is a cookie of the realm. Over https it is SameSite=None; Secure,
// so a dashboard on another site sees the session in its iframes; over
// plain http browsers refuse that, so it is SameSite=Lax, which still
// reaches iframes of pages on the same site (another port of the same
// host).
func (b *Broker) cookie(name, value, path string, maxAge int, httpOnly bool) *http.Cookie {
	// Secure only over https: the dev broker serves plain http on loopback;
	// HttpOnly off only for KEYCLOAK_SESSION, which the login status
	// iframe's script reads (it holds the session id, no secret).
	c := &http.Cookie{Name: name, Value: value, Path: path, MaxAge: maxAge, HttpOnly: httpOnly, SameSite: http.SameSiteLaxMode} //nolint:gosec // G124: see above
	if b.issuer.Scheme == "https" {
		c.Secure, c.SameSite = true, http.SameSiteNoneMode
	}
	return c
}

func (b *Broker) cookiePath() string { return b.issuer.Path + "/" }

func (b *Broker) setSessionCookies(w http.ResponseWriter, sid, browser string) {
	http.SetCookie(w, b.cookie(identityCookie, browser, b.cookiePath(), 0, true))
	http.SetCookie(w, b.cookie(sessionCookie, sid, b.cookiePath(), 0, false))
}

func (b *Broker) clearSessionCookies(w http.ResponseWriter) {
	http.SetCookie(w, b.cookie(identityCookie, "", b.cookiePath(), -1, true))
	http.SetCookie(w, b.cookie(sessionCookie, "", b.cookiePath(), -1, false))
}

func cookieValue(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

// The pages keycloak-js loads in hidden iframes. They are meant to be framed
// by the client's pages (so no frame-ancestors), and run one inline script
// each, allowed by a nonce. The template is parsed on first use, like
// pageTemplate.
var iframeTemplate = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("iframe").Parse(iframeHTML))
})

const iframeHTML = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body>
<script nonce="{{.Nonce}}">
{{- if .Answer}}
window.parent.postMessage({{.Answer}}, "*");
{{- else}}
(function () {
  var allowed = {};
  function sessionCookie() {
    var name = {{.Cookie}} + "=";
    var all = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < all.length; i++) {
      if (all[i].indexOf(name) === 0) {
        return decodeURIComponent(all[i].substring(name.length));
      }
    }
    return "";
  }
  function originAllowed(clientId, origin) {
    var key = clientId + " " + origin;
    if (!allowed[key]) {
      var q = new URLSearchParams({client_id: clientId, origin: origin});
      allowed[key] = fetch("login-status-iframe.html/init?" + q.toString(), {credentials: "same-origin"})
        .then(function (r) { return r.status === 204; }, function () { return false; });
    }
    return allowed[key];
  }
  window.addEventListener("message", function (event) {
    if (typeof event.data !== "string" || !event.source) {
      return;
    }
    var parts = event.data.split(" ");
    if (parts.length !== 2) {
      return;
    }
    originAllowed(parts[0], event.origin).then(function (ok) {
      var answer = "error";
      if (ok) {
        answer = sessionCookie() === parts[1] ? "unchanged" : "changed";
      }
      event.source.postMessage(answer, event.origin);
    });
  }, false);
})();
{{- end}}
</script>
</body>
</html>
`

type iframePage struct {
	Title  string
	Nonce  string
	Answer string // step2: "supported" or "unsupported"
	Cookie string // login status: the session cookie's name
}

func (b *Broker) renderIframe(w http.ResponseWriter, p iframePage) {
	p.Nonce = rand.Text()
	b.writeHTML(w, http.StatusOK, iframeTemplate(), p, "default-src 'none'; script-src 'nonce-"+p.Nonce+"'; connect-src 'self'")
}

// thirdPartyStep1 is 3p-cookies/step1.html: it sets a test cookie and sends
// the frame to step2, which tells keycloak-js whether the cookie came back.
func (b *Broker) thirdPartyStep1(w http.ResponseWriter, r *http.Request) {
	path := b.cookiePath() + oidcPath + "/3p-cookies/"
	http.SetCookie(w, b.cookie(thirdPartyCookie, "supported", path, int(time.Minute.Seconds()), true))
	http.Redirect(w, r, b.Issuer()+"/"+oidcPath+"/3p-cookies/step2.html", http.StatusFound)
}

// thirdPartyStep2 is 3p-cookies/step2.html: it posts "supported" or
// "unsupported" to the parent, the message keycloak-js waits for.
func (b *Broker) thirdPartyStep2(w http.ResponseWriter, r *http.Request) {
	answer := "unsupported"
	if cookieValue(r, thirdPartyCookie) == "supported" {
		answer = "supported"
	}
	path := b.cookiePath() + oidcPath + "/3p-cookies/"
	http.SetCookie(w, b.cookie(thirdPartyCookie, "", path, -1, true))
	b.renderIframe(w, iframePage{Title: "3rd party cookies check", Answer: answer})
}

// loginStatusIframe is login-status-iframe.html (OpenID Connect Session
// Management's OP iframe, as Keycloak's): the client posts "CLIENT_ID
// SESSION_STATE"; once its origin is allowed for the client (init), the
// frame answers "unchanged" if the browser's session is that one (or there
// is none and the client has none), "changed" otherwise, "error" for an
// origin the client does not allow.
func (b *Broker) loginStatusIframe(w http.ResponseWriter, _ *http.Request) {
	b.renderIframe(w, iframePage{Title: "Login status", Cookie: sessionCookie})
}

// loginStatusInit answers 204 when origin is a web origin of client_id,
// 403 otherwise.
func (b *Broker) loginStatusInit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != b.clientID || !b.store.client.allowsOrigin(q.Get("origin")) {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
