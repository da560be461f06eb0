package login

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"net/http"
	"sync"

	"github.com/distributed-system-analysis/pbench-auth/internal/browser"
	"github.com/distributed-system-analysis/pbench-auth/internal/netutil"
	"github.com/distributed-system-analysis/pbench-auth/internal/redact"
	"github.com/int128/oauth2cli"
	"golang.org/x/oauth2"
)

// authCodeLogin is the authorization code grant through the loopback
// listener, with PKCE S256 (unless the broker rules it out), state and nonce.
func authCodeLogin(ctx context.Context, o *Options) (*Result, error) {
	conf := o.oauth2Config()
	// The broker's authorization endpoint goes to a browser and the
	// terminal: only an absolute https URL (or http on loopback) may.
	if _, err := browser.CheckURL(conf.Endpoint.AuthURL); err != nil {
		return nil, fmt.Errorf("the broker's authorization_endpoint (discovery of %s): %w", o.Broker.Issuer, err)
	}
	addr, redirectURI, err := pickListenAddress(o.ListenAddresses, o.Prompt)
	if err != nil {
		return nil, err
	}
	conf.RedirectURL = redirectURI

	state, nonce := rand.Text(), rand.Text()
	authOpts := []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("nonce", nonce)}
	var tokenOpts []oauth2.AuthCodeOption
	pkce := "S256"
	if o.Broker.SupportsPKCES256() {
		verifier := oauth2.GenerateVerifier()
		authOpts = append(authOpts, oauth2.S256ChallengeOption(verifier))
		tokenOpts = append(tokenOpts, oauth2.VerifierOption(verifier))
	} else {
		pkce = "none (the broker does not list S256 in code_challenge_methods_supported)"
	}
	authURL, err := browser.CheckURL(conf.AuthCodeURL(state, authOpts...))
	if err != nil {
		return nil, fmt.Errorf("the broker's authorization_endpoint (discovery of %s): %w", o.Broker.Issuer, err)
	}

	ready := make(chan string, 1)
	guard := &callbackGuard{o: o, state: state, tokenURL: conf.Endpoint.TokenURL}
	cfg := oauth2cli.Config{
		OAuth2Config:            conf,
		AuthCodeOptions:         authOpts,
		TokenRequestOptions:     tokenOpts,
		State:                   state,
		LocalServerBindAddress:  []string{addr},
		LocalServerCallbackPath: CallbackPath,
		LocalServerSuccessHTML:  successHTML,
		LocalServerMiddleware:   guard.middleware,
		LocalServerReadyChan:    ready,
	}
	// Once the listener is up, send the user to the broker. Login waits for
	// this to end, so that nothing is printed after it returns.
	var shown sync.WaitGroup
	shown.Go(func() {
		select {
		case <-ready:
			o.Tracef("listening on %s for the broker's redirect (loopback only)", redirectURI)
			o.Tracef("authorization URL (PKCE %s): %s", pkce, redact.AuthURL(authURL))
			o.showAuthURL(authURL, redirectURI)
		case <-ctx.Done():
		}
	})
	tok, err := oauth2cli.GetToken(ctx, cfg)
	shown.Wait()
	if refusal := guard.brokerRefusal(); refusal != nil {
		return nil, refusal
	}
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	return o.result(ctx, tok, conf.Scopes, nonce)
}

// showAuthURL sends the user to the broker: through Browser, or by printing
// the URL when there is none or it fails.
func (o *Options) showAuthURL(authURL, redirectURI string) {
	if o.Browser != nil {
		o.Tracef("opening a browser at the authorization URL")
		err := o.Browser(authURL)
		if err == nil {
			_, _ = fmt.Fprintf(o.Prompt, "Opened a browser to log in at %s (waiting up to %s).\n", netutil.OriginOf(authURL), o.Timeout)
			return
		}
		_, _ = fmt.Fprintf(o.Prompt, "pbench-auth: could not open a browser: %v\n", err)
	}
	_, _ = fmt.Fprintf(o.Prompt, "Open this URL in a browser to log in (waiting up to %s):\n\n    %s\n\n"+
		"The broker then sends the browser to %s: it must reach this machine (over SSH, forward that port with ssh -L).\n",
		o.Timeout, authURL, redirectURI)
}

// callbackGuard stands before oauth2cli's callback handler.
//
// It keeps a callback that does not carry this login's state (a stale tab
// of an earlier login, another program) away from oauth2cli, which would
// otherwise end the login with it: that callback gets an error page, the
// user a message, and the login keeps waiting for its own callback.
//
// It also remembers the broker's error answer (error, error_description),
// to report it in words rather than through oauth2cli's nested wrapping.
type callbackGuard struct {
	o        *Options
	state    string
	tokenURL string

	mu      sync.Mutex
	refusal error
}

func (g *callbackGuard) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if !q.Has("code") && !q.Has("error") {
			next.ServeHTTP(w, r)
			return
		}
		if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(g.state)) != 1 {
			_, _ = fmt.Fprintln(g.o.Prompt, "pbench-auth: ignored a login response that is not for this login (wrong state: "+
				"a stale browser tab or another program); still waiting for this login's response")
			g.o.Tracef("callback with a wrong state refused (400)")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = fmt.Fprint(w, wrongStateHTML)
			return
		}
		if e := q.Get("error"); e != "" {
			g.o.Tracef("callback received: error %q", e)
			g.mu.Lock()
			g.refusal = fmt.Errorf("the broker refused the login: %s", e)
			if d := q.Get("error_description"); d != "" {
				g.refusal = fmt.Errorf("the broker refused the login: %s: %s", e, d)
			}
			g.mu.Unlock()
		} else {
			g.o.Tracef("callback received: code %s, state matches", redact.Secret(q.Get("code")))
			g.o.Tracef("exchanging the code at %s (PKCE code_verifier redacted)", g.tokenURL)
		}
		next.ServeHTTP(w, r)
	})
}

// brokerRefusal is the broker's error answer, if the callback carried one.
func (g *callbackGuard) brokerRefusal() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refusal
}

const successHTML = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pbench-auth: logged in</title></head>
<body><h1>Logged in</h1><p>pbench-auth received the broker's answer. You can close this window.</p></body></html>
`

const wrongStateHTML = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pbench-auth: not this login</title></head>
<body><h1>This login response was ignored</h1>
<p>It does not belong to the pbench-auth login waiting here (its state does not match):
it may come from an old browser tab. Finish logging in in the window the current login opened,
or run the login again.</p></body></html>
`
