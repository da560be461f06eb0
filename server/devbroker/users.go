package devbroker

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"slices"
	"strings"
)

// directory holds the realm's users. It is read-only after newDirectory.
type directory struct {
	realm  string
	byName map[string]*account
	order  []string
}

type account struct {
	User
	subject string
}

func newDirectory(realm string, users []User) (*directory, error) {
	d := &directory{realm: realm, byName: make(map[string]*account, len(users))}
	for _, u := range users {
		if u.Name == "" || u.Password == "" {
			return nil, fmt.Errorf("user %q: the name and the password must not be empty", u.Name)
		}
		if strings.ContainsAny(u.Name, ": \t\n") {
			return nil, fmt.Errorf("user %q: the name must not contain ':' or spaces", u.Name)
		}
		if _, dup := d.byName[u.Name]; dup {
			return nil, fmt.Errorf("user %q is defined twice", u.Name)
		}
		u.Roles = slices.Clone(u.Roles)
		if u.Email == "" {
			u.Email = u.Name + "@example.com"
		}
		d.byName[u.Name] = &account{User: u, subject: subjectFor(realm, u.Name)}
		d.order = append(d.order, u.Name)
	}
	return d, nil
}

// authenticate returns the account if the password is right. The comparison
// is constant-time in the password; unknown names cost the same.
func (d *directory) authenticate(name, password string) (*account, bool) {
	a, ok := d.byName[name]
	want := "\x00no such user"
	if ok {
		want = a.Password
	}
	if subtle.ConstantTimeCompare([]byte(password), []byte(want)) != 1 || !ok {
		return nil, false
	}
	return a, true
}

func (d *directory) bySubject(sub string) (*account, bool) {
	for _, a := range d.byName {
		if a.subject == sub {
			return a, true
		}
	}
	return nil, false
}

func (d *directory) list() []User {
	out := make([]User, 0, len(d.order))
	for _, n := range d.order {
		u := d.byName[n].User
		u.Roles = slices.Clone(u.Roles)
		out = append(out, u)
	}
	return out
}

// subjectFor derives a stable UUID-shaped subject (RFC 9562 version 8) from
// the realm and the user name, so a user keeps their sub across restarts, as
// a Keycloak user keeps their id.
func subjectFor(realm, name string) string {
	h := sha256.Sum256([]byte("pbench-auth devbroker\x00" + realm + "\x00" + name))
	h[6] = h[6]&0x0f | 0x80 // version 8
	h[8] = h[8]&0x3f | 0x80 // variant 10
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
