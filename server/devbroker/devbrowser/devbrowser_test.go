package devbrowser_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/server/devbroker/devbrowser"
)

// A fake broker: /auth shows a login form (with a hidden field), /login
// checks it and redirects to the client, which must not be fetched.
func fakeBroker(t *testing.T, client string) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /auth", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<html><body><form method="post" action="login?x=1">
<input type="hidden" name="id" value="req-7"><input name="username"><input type="password" name="password">
<button type="submit">Sign in</button></form></body></html>`))
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("x") != "1" || r.PostFormValue("id") != "req-7" {
			t.Errorf("form posted to %s with %v: hidden field or action lost", r.URL, r.PostForm)
		}
		if r.PostFormValue("username") != "ann" || r.PostFormValue("password") != "pw" {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(`<form method="post" action="login?x=1"><p id="error">Bad <b>password</b></p>
<input type="hidden" name="id" value="req-7"><input name="username"><input type="password" name="password"></form>`))
			return
		}
		http.Redirect(w, r, "/hop", http.StatusSeeOther) // stays on the broker: followed
	})
	mux.HandleFunc("GET /hop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, client+"/callback?code=c0de&state=s", http.StatusFound)
	})
	mux.HandleFunc("GET /json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_request"}`))
	})
	mux.HandleFunc("GET /noform", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<p id="error">Login expired</p>`))
	})
	mux.HandleFunc("GET /oautherror", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, client+"/callback?error=invalid_request&error_description=PKCE+required", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestLogin(t *testing.T) {
	var clientHits atomic.Int32
	client := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { clientHits.Add(1) }))
	defer client.Close()
	broker := fakeBroker(t, client.URL)

	got, err := devbrowser.Login(t.Context(), broker.Client(), broker.URL+"/auth", "ann", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if want := client.URL + "/callback?code=c0de&state=s"; got != want {
		t.Errorf("Login = %s, want %s", got, want)
	}
	if clientHits.Load() != 0 {
		t.Error("Login fetched the client's redirect URL itself")
	}

	_, err = devbrowser.Login(t.Context(), broker.Client(), broker.URL+"/auth", "ann", "nope")
	if !errors.Is(err, devbrowser.ErrLoginRefused) || !strings.Contains(err.Error(), "Bad password") {
		t.Errorf("wrong password: %v, want ErrLoginRefused with the page's text", err)
	}

	for path, want := range map[string]string{
		"/json":       "HTTP 400",
		"/noform":     "Login expired",
		"/oautherror": "invalid_request: PKCE required",
	} {
		_, err := devbrowser.Login(t.Context(), broker.Client(), broker.URL+path, "ann", "pw")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Login at %s: %v, want an error with %q", path, err, want)
		}
	}
	if _, err := devbrowser.Login(t.Context(), nil, "/relative", "ann", "pw"); err == nil {
		t.Error("a relative URL was accepted")
	}
}
