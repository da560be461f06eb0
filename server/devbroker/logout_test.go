package devbroker_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// noRedirects is tb's client, stopping at the first redirect.
func noRedirects(tb *testBroker) *http.Client {
	c := *tb.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func getPage(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// The end-session endpoint opened with client_id only (pbench-auth logout
// --browser) asks to confirm, like Keycloak, and the confirmation ends on
// the logged-out page.
func TestEndSessionConfirmation(t *testing.T) {
	tb := newTestBroker(t)
	c := noRedirects(tb)
	status, body := getPage(t, c, tb.endpoint("logout")+"?"+url.Values{"client_id": {clientID}}.Encode())
	form := `<form id="logout" method="post" action="` + tb.endpoint("logout") + `">`
	if status != http.StatusOK || !strings.Contains(body, "Do you want to log out?") || !strings.Contains(body, form) ||
		!strings.Contains(body, `<input type="hidden" name="client_id" value="`+clientID+`">`) {
		t.Fatalf("GET logout?client_id: %d\n%s\nwant 200, the question and %s with the client id", status, body, form)
	}
	resp, err := c.PostForm(tb.endpoint("logout"), url.Values{"client_id": {clientID}})
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != tb.Issuer()+"/logged-out" {
		t.Fatalf("confirm the logout: %s to %q, want 302 to the logged-out page", resp.Status, loc)
	}
	if status, body := getPage(t, c, tb.Issuer()+"/logged-out"); status != http.StatusOK || !strings.Contains(body, "You are logged out.") {
		t.Errorf("logged-out page: %d\n%s", status, body)
	}
}

func TestEndSessionConfirmationUnknownClient(t *testing.T) {
	tb := newTestBroker(t)
	status, body := getPage(t, noRedirects(tb), tb.endpoint("logout")+"?client_id=%3Cb%3Eother")
	if status != http.StatusBadRequest || !strings.Contains(body, "Unknown client &lt;b&gt;other") || strings.Contains(body, `id="logout"`) {
		t.Errorf("GET logout with an unknown client: %d\n%s\nwant 400 naming it, escaped, and no form", status, body)
	}
}
