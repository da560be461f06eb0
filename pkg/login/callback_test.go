package login_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/pkg/login"
)

// A second callback with this login's state (a replay, a double-clicked
// link, an attacker who learnt the state) after the first one must be
// ignored: the login completes with the first code, and the second gets
// neither the success page nor a code exchange (its code would fail it).
func TestSecondCallbackIsIgnored(t *testing.T) {
	broker := startBroker(t)
	br := &browser{t: t}
	var second struct {
		err    error
		status int
		body   string
	}
	res, err := login.Login(context.Background(), login.Options{
		Broker: broker,
		Browser: func(authURL string) error {
			if err := br.open(authURL); err != nil {
				return err
			}
			br.mu.Lock()
			first := br.callback
			br.mu.Unlock()
			u, err := url.Parse(first)
			if err != nil {
				t.Errorf("first callback %q: %v", first, err)
				return nil
			}
			q := u.Query()
			q.Set("code", "second-code-"+q.Get("code"))
			u.RawQuery = q.Encode()
			resp, err := http.Get(u.String()) // #nosec G107 -- the test's own listener
			second.err = err
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				second.status, second.body = resp.StatusCode, string(b)
			}
			return nil
		},
		Prompt: io.Discard,
	})
	if err != nil {
		t.Fatalf("the login must complete with the first callback: %v", err)
	}
	if res.User.PreferredUsername != user || res.Tokens.AccessToken == "" {
		t.Errorf("logged in as %+v", res.User)
	}
	if br.status != http.StatusOK {
		t.Errorf("first callback answered %d, want 200", br.status)
	}
	// Either the listener is already gone, or it answers without the
	// success page: both ignore the second callback.
	if second.err == nil && strings.Contains(second.body, "Logged in") {
		t.Errorf("the second callback got the success page (status %d)", second.status)
	}
}
