package server

import (
	"encoding/json"
	"testing"
)

// TestAppendIdentityJSON checks that the hand-written encoding of
// /api/v1/user's body is byte for byte json.Marshal's, and that it declines
// every identity with a byte that JSON escapes.
func TestAppendIdentityJSON(t *testing.T) {
	tests := []struct {
		name  string
		id    Identity
		plain bool
	}{
		{"keycloak user", Identity{Subject: "f4b1c1a2-3c4d-4e5f-8a9b-0c1d2e3f4a5b", Username: "alice", Email: "alice@example.com", Roles: []string{"ADMIN", "offline_access"}}, true},
		{"no roles", Identity{Subject: "s", Username: "s", Roles: []string{}}, true},
		{"nil roles", Identity{Subject: "s", Username: "s"}, true},
		{"quote in username", Identity{Subject: "s", Username: `a"b`, Roles: []string{}}, false},
		{"backslash in email", Identity{Subject: "s", Username: "u", Email: `a\b@x`, Roles: []string{}}, false},
		{"HTML in role", Identity{Subject: "s", Username: "u", Roles: []string{"<admin>"}}, false},
		{"ampersand in subject", Identity{Subject: "a&b", Username: "u", Roles: []string{}}, false},
		{"control byte", Identity{Subject: "s", Username: "u\n", Roles: []string{}}, false},
		{"non-ASCII", Identity{Subject: "s", Username: "jürgen", Roles: []string{}}, false},
		{"DEL", Identity{Subject: "s", Username: "u\x7f", Roles: []string{}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := appendIdentityJSON([]byte("prefix"), &tt.id)
			if ok != tt.plain {
				t.Fatalf("plain = %v, want %v", ok, tt.plain)
			}
			if !ok {
				return
			}
			want, err := json.Marshal(&tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "prefix"+string(want) {
				t.Errorf("got %s\nwant prefix%s", got, want)
			}
		})
	}
}

// FuzzAppendIdentityJSON: whenever the fast path answers, it is json.Marshal's output.
func FuzzAppendIdentityJSON(f *testing.F) {
	f.Add("sub", "user", "user@example.com", "role")
	f.Add("s", `"`, "<", "\x00")
	f.Fuzz(func(t *testing.T, sub, user, email, role string) {
		id := Identity{Subject: sub, Username: user, Email: email, Roles: []string{role, role + "x"}}
		got, ok := appendIdentityJSON(nil, &id)
		if !ok {
			return
		}
		want, _ := json.Marshal(&id)
		if string(got) != string(want) {
			t.Errorf("got %s, want %s", got, want)
		}
	})
}
