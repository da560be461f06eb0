package serve

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestOwnBrokerClient(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/realms/r/certs", func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || r.Host != "127.0.0.1:8443" || r.URL.Path != "/realms/r/certs" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"keys":[]}`)
	})
	hc, err := ownBrokerClient("https://127.0.0.1:8443/realms/r", mux)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing listens on 127.0.0.1:8443 in this test: the answer comes from mux.
	resp, err := hc.Get("https://127.0.0.1:8443/realms/r/certs")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != `{"keys":[]}` || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("got %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, err = hc.Get("https://127.0.0.1:8443/realms/r/nope")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path: %d, want the mux's 404", resp.StatusCode)
	}
	for _, other := range []string{"https://127.0.0.1:9443/realms/r/certs", "http://127.0.0.1:8443/realms/r/certs", "https://sso.example.com/realms/r/certs"} {
		resp, err := hc.Get(other) // #nosec G107 -- fixed test URLs
		if err == nil {
			_ = resp.Body.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "only from its own broker") {
			t.Errorf("GET %s: %v, want it refused", other, err)
		}
	}
}
