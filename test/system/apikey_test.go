package system

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/pgtest"
)

var listeningOn = regexp.MustCompile(`listening on (https?://[^,\s]+)`)

// startReplica runs serve on a port of its own choosing (--listen :0) with
// the key database dsn, and returns it with its base URL.
func startReplica(t *testing.T, name, issuer, dsn string, extra ...string) (*proc, string) {
	t.Helper()
	p := startServe(t, name, append([]string{"--issuer", issuer, "--listen", "127.0.0.1:0", "--database", dsn,
		"--require-role", "/api/v1/admin=ADMIN"}, extra...)...)
	var base string
	waitFor(t, name+" listening", func() error {
		m := listeningOn.FindStringSubmatch(p.Output())
		if m == nil {
			if !p.Running() {
				t.Fatalf("%s exited:\n%s", name, p.Output())
			}
			return fmt.Errorf("not yet")
		}
		base = m[1]
		return nil
	})
	waitFor(t, name+" ready", func() error { return expectStatus(base+"/readyz", "", 200) })
	return p, base
}

// send sends method url with the Bearer credential and decodes a JSON
// answer into out (if not nil).
func send(t *testing.T, method, u, cred string, out any) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var raw json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&raw)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, u, err, raw)
		}
	}
	if resp.StatusCode == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
		t.Errorf("401 without an RFC 6750 challenge: %q", resp.Header.Get("WWW-Authenticate"))
	}
	return resp.StatusCode, string(raw)
}

type created struct {
	ID  int64  `json:"id"`
	Key string `json:"key"`
}

func createKey(t *testing.T, base, token, label string) created {
	t.Helper()
	var c created
	if status, body := send(t, "POST", base+"/api/v1/key?label="+label, token, &c); status != 201 {
		t.Fatalf("create a key: %d %s", status, body)
	}
	return c
}

// TestAPIKeysOnPostgreSQL runs two serve replicas on one real PostgreSQL:
// a key created on one works on the other at once, one deleted on either is
// refused by both, the database may go down and come back, and no key ever
// reaches a log line.
func TestAPIKeysOnPostgreSQL(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	_, issuer := startBroker(t, testutil.ReserveAddr(t), filepath.Join(t.TempDir(), "key.pem"),
		"--dev-user", "admin:admin:ADMIN", "--dev-user", "user:user", "--dev-user", "other:other")
	// A is a gateway: its upstream echoes the identity headers it gets.
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "%q", r.Header.Get("X-Forwarded-User")+"|"+r.Header.Get("X-Forwarded-Roles"))
	}))
	defer upstream.Close()
	a, baseA := startReplica(t, "serve A", issuer, dsn, "--upstream", upstream.URL)
	b, baseB := startReplica(t, "serve B", issuer, dsn, "--log-format", "json")
	userTok := brokerTokenAs(t, issuer, "user", "user")
	otherTok := brokerTokenAs(t, issuer, "other", "other")
	adminTok := brokerTokenAs(t, issuer, "admin", "admin")
	var keys []string // every key made, to look for in the logs

	// Pbench's shape, and the key shown only here.
	var shape map[string]any
	if status, body := send(t, "POST", baseA+"/api/v1/key?label=ci", userTok, &shape); status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	fields := slices.Sorted(func(yield func(string) bool) {
		for k := range shape {
			if !yield(k) {
				return
			}
		}
	})
	if want := []string{"created", "id", "key", "label", "username"}; !slices.Equal(fields, want) {
		t.Fatalf("POST /api/v1/key answered fields %v, want %v", fields, want)
	}
	key := shape["key"].(string)
	id := int64(shape["id"].(float64))
	keys = append(keys, key)
	if !strings.HasPrefix(key, "pbench_") || shape["username"] != "user" || shape["label"] != "ci" {
		t.Fatalf("created %v", shape)
	}

	t.Run("created on A, used on B at once", func(t *testing.T) {
		var id struct {
			Username string   `json:"username"`
			Roles    []string `json:"roles"`
		}
		if status, body := send(t, "GET", baseB+"/api/v1/user", key, &id); status != 200 || id.Username != "user" || len(id.Roles) == 0 || slices.Contains(id.Roles, "ADMIN") {
			t.Fatalf("B with the key: %d %s", status, body)
		}
		// The owner's roles at creation.
		admin := createKey(t, baseA, adminTok, "admin")
		keys = append(keys, admin.Key)
		if status, body := send(t, "GET", baseB+"/api/v1/user", admin.Key, &id); status != 200 || id.Username != "admin" || !slices.Contains(id.Roles, "ADMIN") {
			t.Fatalf("B with admin's key: %d %s", status, body)
		}
		// The gateway: role rules and identity headers as for tokens.
		if status, body := send(t, "GET", baseA+"/api/v1/admin/x", key, nil); status != 403 {
			t.Errorf("the key of a user without ADMIN through the gateway to /api/v1/admin: %d %s", status, body)
		}
		if status, body := send(t, "GET", baseA+"/api/v1/admin/x", admin.Key, nil); status != 200 || !strings.HasPrefix(body, `"admin|`) || !strings.Contains(body, "ADMIN") {
			t.Errorf("admin's key through the gateway: %d %s, want the identity headers admin|ADMIN", status, body)
		}
	})

	t.Run("a key cannot create keys", func(t *testing.T) {
		if status, body := send(t, "POST", baseB+"/api/v1/key?label=x", key, nil); status != 403 {
			t.Fatalf("POST with a key: %d %s, want 403", status, body)
		}
	})

	t.Run("lists never show the key", func(t *testing.T) {
		var list []map[string]any
		status, body := send(t, "GET", baseB+"/api/v1/key", userTok, &list)
		if status != 200 || len(list) != 1 || strings.Contains(body, key[len("pbench_")+4:]) {
			t.Fatalf("list: %d %s", status, body)
		}
		if p, _ := list[0]["prefix"].(string); !strings.HasPrefix(key, p) || len(p) != len("pbench_")+4 {
			t.Errorf("prefix %q of key %q...", p, key[:11])
		}
		for _, f := range []string{"id", "label", "created", "last_used", "expires"} {
			if _, ok := list[0][f]; !ok {
				t.Errorf("list entry lacks %q: %s", f, body)
			}
		}
		if status, body := send(t, "GET", fmt.Sprintf("%s/api/v1/key/%d", baseA, id), key, nil); status != 200 || strings.Contains(body, key) {
			t.Errorf("GET one: %d %s", status, body)
		}
	})

	t.Run("another user's key is not found", func(t *testing.T) {
		u := fmt.Sprintf("%s/api/v1/key/%d", baseA, id)
		if status, _ := send(t, "GET", u, otherTok, nil); status != 404 {
			t.Errorf("GET another's key: %d, want 404", status)
		}
		if status, _ := send(t, "DELETE", u, otherTok, nil); status != 404 {
			t.Errorf("DELETE another's key: %d, want 404", status)
		}
		if status, _ := send(t, "GET", baseA+"/api/v1/user", key, nil); status != 200 {
			t.Errorf("the key stopped working after another user's DELETE: %d", status)
		}
	})

	t.Run("concurrent creates", func(t *testing.T) {
		var mu sync.Mutex
		ids := map[int64]bool{}
		var wg sync.WaitGroup
		for i := range 20 {
			base := baseA
			if i%2 == 1 {
				base = baseB
			}
			wg.Go(func() {
				var c created
				status, body := send(t, "POST", fmt.Sprintf("%s/api/v1/key?label=c%d", base, i), otherTok, &c)
				mu.Lock()
				defer mu.Unlock()
				if status != 201 || ids[c.ID] {
					t.Errorf("concurrent create %d: %d %s", i, status, body)
				}
				ids[c.ID] = true
				keys = append(keys, c.Key)
			})
		}
		wg.Wait()
		var list []map[string]any
		if status, body := send(t, "GET", baseA+"/api/v1/key", otherTok, &list); status != 200 || len(list) != 20 {
			t.Fatalf("other's keys: %d, %d listed, want 20: %s", status, len(list), body)
		}
	})

	t.Run("deleted on B, refused on A within 1s", func(t *testing.T) {
		// A has the key in its cache.
		if status, _ := send(t, "GET", baseA+"/api/v1/user", key, nil); status != 200 {
			t.Fatalf("A with the key: %d", status)
		}
		if status, body := send(t, "DELETE", fmt.Sprintf("%s/api/v1/key/%d", baseB, id), userTok, nil); status != 200 || body != `"deleted"` {
			t.Fatalf("delete on B: %d %s", status, body)
		}
		deleted := time.Now()
		if status, _ := send(t, "GET", baseB+"/api/v1/user", key, nil); status != 401 {
			t.Errorf("B still accepts the key it deleted: %d", status)
		}
		// Poll A: any request sent a second or more after the deletion must
		// be refused, and the first refusal must come.
		for {
			sent := time.Now()
			status, body := send(t, "GET", baseA+"/api/v1/user", key, nil)
			if status == 401 {
				if !strings.Contains(body, "invalid API key") {
					t.Errorf("401 body %s", body)
				}
				break
			}
			if status != 200 || sent.Sub(deleted) >= time.Second {
				t.Fatalf("A answered %d to a request sent %s after the deletion", status, sent.Sub(deleted))
			}
		}
	})

	t.Run("an admin deletes anyone's key", func(t *testing.T) {
		k := createKey(t, baseA, userTok, "for-admin")
		keys = append(keys, k.Key)
		if status, body := send(t, "DELETE", fmt.Sprintf("%s/api/v1/key/%d", baseB, k.ID), adminTok, nil); status != 200 {
			t.Fatalf("admin delete: %d %s", status, body)
		}
	})

	t.Run("database down mid-run, then back", func(t *testing.T) {
		k := createKey(t, baseA, userTok, "outage")
		keys = append(keys, k.Key)
		if status, _ := send(t, "GET", baseA+"/api/v1/user", k.Key, nil); status != 200 {
			t.Fatalf("before the outage: %d", status)
		}
		pg.Stop(t)
		// Deletions cannot be seen while the database is down: keys are
		// refused with 503, soon; tokens keep working.
		waitFor(t, "503 for a key during the outage", func() error { return expectStatus(baseA+"/api/v1/user", k.Key, 503) })
		if status, _ := send(t, "GET", baseA+"/api/v1/user", userTok, nil); status != 200 {
			t.Errorf("a broker token during the outage: %d", status)
		}
		if status, _ := send(t, "POST", baseB+"/api/v1/key?label=x", userTok, nil); status != 503 {
			t.Errorf("create during the outage: %d, want 503", status)
		}
		pg.Restart(t)
		waitFor(t, "the key again after the outage", func() error { return expectStatus(baseA+"/api/v1/user", k.Key, 200) })
		waitFor(t, "the key again on B", func() error { return expectStatus(baseB+"/api/v1/user", k.Key, 200) })
	})

	t.Run("PBENCH_API_KEY with call, token and status", func(t *testing.T) {
		k := createKey(t, baseA, userTok, "cli")
		keys = append(keys, k.Key)
		c := newCLI(t, "PBENCH_API_KEY="+k.Key, "PBENCH_SERVER="+baseB)
		r := c.run("-v", "call", "/api/v1/user")
		if r.code != 0 || !strings.Contains(r.stdout, `"user"`) {
			t.Fatalf("call: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		checkNoKeys(t, "call -v", r.stderr, keys)
		if r := c.run("token"); r.code != 0 || strings.TrimSpace(r.stdout) != k.Key {
			t.Errorf("token: exit %d, printed the key: %v", r.code, strings.TrimSpace(r.stdout) == k.Key)
		}
		r = c.run("status")
		if r.code != 0 || !strings.Contains(r.stdout, "API key from $PBENCH_API_KEY") || !strings.Contains(r.stdout, "user") {
			t.Errorf("status: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		checkNoKeys(t, "status", r.stdout+r.stderr, keys)
		if r := c.run("key", "create", "--label", "nested"); r.code != 6 || !strings.Contains(r.stderr, "cannot create") {
			t.Errorf("key create with an API key: exit %d %s", r.code, r.stderr)
		}
		if status, _ := send(t, "DELETE", fmt.Sprintf("%s/api/v1/key/%d", baseA, k.ID), userTok, nil); status != 200 {
			t.Fatal("delete")
		}
		waitFor(t, "the deleted key refused", func() error { return expectStatus(baseB+"/api/v1/user", k.Key, 401) })
		if r := c.run("call", "/api/v1/user"); r.code != 6 {
			t.Errorf("call with a deleted key: exit %d, want 6\n%s", r.code, r.stderr)
		}
		if r := c.run("status"); r.code != 4 || !strings.Contains(r.stderr, "refused the API key") {
			t.Errorf("status with a deleted key: exit %d, want 4\n%s", r.code, r.stderr)
		}
	})

	t.Run("Pbench's keys imported", func(t *testing.T) {
		legacy := pbenchDatabase(t, pg)
		r := newCLI(t).run("key", "import", "--from", legacy.dsn, "--database", dsn)
		if r.code != 0 || !strings.Contains(r.stderr, "imported 1 API keys") {
			t.Fatalf("import: exit %d\n%s", r.code, r.stderr)
		}
		keys = append(keys, legacy.key)
		var id struct {
			Username string   `json:"username"`
			Roles    []string `json:"roles"`
		}
		if status, body := send(t, "GET", baseA+"/api/v1/user", legacy.key, &id); status != 200 || id.Username != "pbuser" || !slices.Equal(id.Roles, []string{"ADMIN"}) {
			t.Fatalf("a Pbench key after import: %d %s", status, body)
		}
		if r := newCLI(t).run("key", "import", "--from", legacy.dsn, "--database", dsn); r.code != 0 || !strings.Contains(r.stderr, "imported 0 API keys") {
			t.Errorf("second import: exit %d %s", r.code, r.stderr)
		}
	})

	checkNoKeys(t, "serve A's log", a.Output(), keys)
	checkNoKeys(t, "serve B's log", b.Output(), keys)
}

// checkNoKeys fails if out holds any of keys, or their SHA-256 (hex or
// base64).
func checkNoKeys(t *testing.T, what, out string, keys []string) {
	t.Helper()
	for _, k := range keys {
		if k == "" {
			continue
		}
		h := sha256.Sum256([]byte(k))
		for _, s := range []string{k, k[len(k)-20:], hex.EncodeToString(h[:]), base64.StdEncoding.EncodeToString(h[:])} {
			if strings.Contains(out, s) {
				t.Errorf("%s contains an API key or its hash", what)
				return
			}
		}
	}
}

type pbenchDB struct{ dsn, key string }

// pbenchDatabase makes a database with Pbench's users and api_keys tables
// (as Pbench's models define them) holding one key of Pbench's making: an
// HS256 JWT.
func pbenchDatabase(t *testing.T, pg *pgtest.Server) pbenchDB {
	t.Helper()
	dsn := pg.NewDatabase(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	key := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"iat":1700000000,"user_id":"3f1c","username":"pbuser"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte("not-a-real-signature-0123456789"))
	for _, q := range []string{
		`CREATE TABLE users (id VARCHAR(255) PRIMARY KEY, username VARCHAR(255) UNIQUE NOT NULL, _roles VARCHAR(255))`,
		`CREATE TABLE api_keys (id SERIAL PRIMARY KEY, key VARCHAR(500) UNIQUE NOT NULL,
			created TIMESTAMP NOT NULL, label VARCHAR(128), user_id VARCHAR REFERENCES users(id) NOT NULL)`,
		`INSERT INTO users VALUES ('3f1c', 'pbuser', 'ADMIN')`,
		`INSERT INTO api_keys (key, created, label, user_id) VALUES ('` + key + `', '2024-05-01 10:00:00', 'agent', '3f1c')`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return pbenchDB{dsn: dsn, key: key}
}

// TestAPIKeysDatabaseDownAtStart: serve starts without its database,
// validates tokens, answers key requests 503, and recovers by itself.
func TestAPIKeysDatabaseDownAtStart(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	pg.Stop(t)
	_, issuer := startBroker(t, testutil.ReserveAddr(t), filepath.Join(t.TempDir(), "key.pem"))
	p, base := startReplica(t, "serve", issuer, dsn)
	tok := brokerToken(t, issuer)
	if status, body := send(t, "GET", base+"/api/v1/user", tok, nil); status != 200 {
		t.Fatalf("a token with the database down: %d %s", status, body)
	}
	if status, body := send(t, "POST", base+"/api/v1/key?label=x", tok, nil); status != 503 {
		t.Fatalf("create with the database down: %d %s, want 503", status, body)
	}
	if status, _ := send(t, "GET", base+"/api/v1/user", "pbench_"+strings.Repeat("A", 43), nil); status != 503 {
		t.Errorf("a key with the database down: %d, want 503", status)
	}
	pg.Restart(t)
	var c created
	waitFor(t, "create once the database is up", func() error {
		status, body := send(t, "POST", base+"/api/v1/key?label=x", tok, &c)
		if status != 201 {
			return fmt.Errorf("%d %s", status, body)
		}
		return nil
	})
	if status, _ := send(t, "GET", base+"/api/v1/user", c.Key, nil); status != 200 {
		t.Errorf("the new key: %d", status)
	}
	checkNoKeys(t, "serve's log", p.Output(), []string{c.Key})
}

// TestKeyCommandsOnDevSQLite: `key create/list/delete` of a logged-in user
// against serve --dev, whose keys are in a temporary SQLite file.
func TestKeyCommandsOnDevSQLite(t *testing.T) {
	c, base, broker, _ := loggedIn(t, "file", nil)
	r := c.run("key", "create", "--label", "nightly CI", "--expires", "90d")
	key := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(key, "pbench_") || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("key create: exit %d\nstdout %q\nstderr %s", r.code, r.stdout, r.stderr)
	}
	if status, body := send(t, "GET", base+"/api/v1/user", key, nil); status != 200 {
		t.Fatalf("the key on serve --dev: %d %s", status, body)
	}
	r = c.run("key", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "nightly CI") || !strings.Contains(r.stdout, key[:11]) || strings.Contains(r.stdout, key) {
		t.Fatalf("key list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = c.run("key", "list", "--json")
	var list []struct {
		ID       int64      `json:"id"`
		Expires  *time.Time `json:"expires"`
		LastUsed *time.Time `json:"last_used"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0].Expires == nil ||
		time.Until(*list[0].Expires) < 89*24*time.Hour {
		t.Fatalf("key list --json: %v %s", err, r.stdout)
	}
	if r := c.run("key", "delete", "999999"); r.code != 6 {
		t.Errorf("delete an unknown id: exit %d, want 6: %s", r.code, r.stderr)
	}
	if r := c.run("key", "delete", fmt.Sprint(list[0].ID)); r.code != 0 {
		t.Fatalf("key delete: exit %d %s", r.code, r.stderr)
	}
	if status, _ := send(t, "GET", base+"/api/v1/user", key, nil); status != 401 {
		t.Errorf("the deleted key: %d, want 401", status)
	}
	checkNoKeys(t, "serve --dev's log", broker.Output(), []string{key})
}
