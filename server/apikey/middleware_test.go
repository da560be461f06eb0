package apikey_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/brokertest"
	"github.com/distributed-system-analysis/pbench-auth/server"
	"github.com/distributed-system-analysis/pbench-auth/server/apikey"
)

// TestMiddlewareForEmbedders: a Go service that embeds the server's
// middleware with APIKeys set accepts keys like tokens, and refuses a
// deleted key with the same RFC 6750 answer as a bad token.
func TestMiddlewareForEmbedders(t *testing.T) {
	b := brokertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keys := apikey.New(apikey.Options{Database: filepath.Join(t.TempDir(), "keys.db")})
	keys.Start(ctx)
	srv, err := server.New(ctx, server.Config{
		Issuer: b.Issuer(), APIKeys: keys, HTTPClient: b.Server.Client(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		ok, _ := keys.Ready()
		ready, _ := srv.Ready()
		if ok && ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the key database or the broker's keys never loaded")
		}
	}
	owner := &server.Identity{Subject: "s-1", Username: "carol", Email: "carol@example.com", Roles: []string{"OPS"}}
	c, err := keys.Create(ctx, owner, "embedded", 0)
	if err != nil {
		t.Fatal(err)
	}
	api := srv.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := server.IdentityFrom(r.Context())
		_, _ = io.WriteString(w, id.Username+"|"+id.Email+"|"+strings.Join(id.Roles, ","))
	}))
	call := func(cred string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/api/v1/datasets", nil)
		req.Header.Set("Authorization", "Bearer "+cred)
		api.ServeHTTP(rec, req)
		return rec
	}
	if rec := call(c.Key); rec.Code != 200 || rec.Body.String() != "carol|carol@example.com|OPS" {
		t.Fatalf("with the key: %d %s", rec.Code, rec.Body)
	}
	bad := call("not-a-token")
	if err := keys.Delete(ctx, owner, c.ID); err != nil {
		t.Fatal(err)
	}
	gone := call(c.Key)
	if gone.Code != 401 || bad.Code != 401 {
		t.Fatalf("deleted key %d, bad token %d: want 401 for both", gone.Code, bad.Code)
	}
	for _, rec := range []*httptest.ResponseRecorder{gone, bad} {
		if h := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(h, `Bearer realm="pbench", error="invalid_token"`) {
			t.Errorf("challenge %q", h)
		}
	}
	if strings.Contains(gone.Body.String()+gone.Header().Get("WWW-Authenticate"), c.Key[len(apikey.Prefix):]) {
		t.Error("the refusal shows the key")
	}
}
