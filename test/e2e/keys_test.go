//go:build e2e

package e2e

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// pbenchKey is an API key as Pbench's server keeps it.
type pbenchKey struct {
	ID       int    `json:"id"`
	Label    string `json:"label"`
	Key      string `json:"key,omitempty"`
	Username string `json:"username"`
	Created  string `json:"created"`
	Expires  string `json:"expires,omitempty"`
	Prefix   string `json:"prefix"`
}

// serveKeys answers Pbench's API key endpoints with Pbench's shapes, for
// the user serve's gateway names in X-Forwarded-User: POST /api/v1/key?label=L
// (201 with the key; pbench-auth's expires_in=SECONDS too), GET /api/v1/key
// (the user's keys, without the key), DELETE /api/v1/key/{id}.
func (u *upstream) serveKeys(w http.ResponseWriter, r *http.Request) {
	user := r.Header.Get("X-Forwarded-User")
	w.Header().Set("Content-Type", "application/json")
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/v1/key":
		u.lastKeyID++
		k := pbenchKey{ID: u.lastKeyID, Label: r.URL.Query().Get("label"), Key: "pbench_" + rand.Text(),
			Username: user, Created: time.Now().UTC().Format(time.RFC3339)}
		k.Prefix = k.Key[:11]
		if secs, err := strconv.Atoi(r.URL.Query().Get("expires_in")); err == nil {
			k.Expires = time.Now().Add(time.Duration(secs) * time.Second).UTC().Format(time.RFC3339)
		}
		u.keys = append(u.keys, k)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(k)
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/key":
		list := []pbenchKey{}
		for _, k := range u.keys {
			if k.Username == user {
				k.Key = ""
				list = append(list, k)
			}
		}
		_ = json.NewEncoder(w).Encode(list)
	case r.Method == http.MethodDelete:
		id, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/api/v1/key/"))
		for i, k := range u.keys {
			if k.ID == id && k.Username == user {
				u.keys = append(u.keys[:i], u.keys[i+1:]...)
				_, _ = w.Write([]byte(`{"message": "deleted"}`))
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message": "no such key"}`))
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (u *upstream) hasKey(key string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, k := range u.keys {
		if k.Key == key && key != "" {
			return true
		}
	}
	return false
}

func (u *upstream) keyCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.keys)
}
