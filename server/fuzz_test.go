package server

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzBearer sends any Authorization header value to the real handler.
// Properties: no panic, no 5xx (the keys are loaded), 200 only for the one
// token the broker signed (the fuzzer cannot sign: a changed signed part, or
// a signature decoding to other bytes, must be refused), and no answer echoes
// the token. Seeds: testdata/fuzz/FuzzBearer and the cases below.
func FuzzBearer(f *testing.F) {
	// One server per fuzzing process; its clock stands still, so the valid
	// seed stays valid however long the fuzzing runs.
	h := newHarness(f, newTestIssuer(f), nil)
	valid := h.ti.token(h.clock.Now(), nil)
	parts := strings.Split(valid, ".")
	for _, seed := range []string{
		"Bearer " + valid,
		"bearer " + valid,
		"Bearer " + parts[0] + "." + parts[1] + ".",
		"Bearer " + b64(map[string]any{"alg": "none"}) + "." + parts[1] + ".",
		"Bearer " + b64(map[string]any{"alg": "HS256", "kid": "rsa-1"}) + "." + parts[1] + "." + parts[2],
		"Bearer " + b64(map[string]any{"alg": "RS256", "kid": "rsa-1", "crit": []string{"b64"}}) + "." + parts[1] + "." + parts[2],
		"Bearer a.b.c",
		"Bearer ...",
		"Bearer",
		"Basic YWxpY2U6c2VjcmV0",
		"",
	} {
		f.Add(seed)
	}
	validSig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		f.Fatal(err)
	}
	signedPart := valid[:strings.LastIndexByte(valid, '.')]

	f.Fuzz(func(t *testing.T, auth string) {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/user", nil)
		if auth != "" {
			req.Header["Authorization"] = []string{auth}
		}
		rec := httptest.NewRecorder()
		h.srv.Handler().ServeHTTP(rec, req)
		status, body := rec.Code, rec.Body.String()
		_, token, _ := strings.Cut(auth, " ")

		switch {
		case status == http.StatusOK:
			dot := strings.LastIndexByte(token, '.')
			sig, err := base64.RawURLEncoding.DecodeString(token[dot+1:])
			if token[:dot] != signedPart || err != nil || !bytes.Equal(sig, validSig) {
				t.Fatalf("200 for a token the broker did not sign: %q", auth)
			}
		case status != http.StatusUnauthorized:
			t.Fatalf("status %d for %q, want 401 (or 200 for the signed token); body %s", status, auth, body)
		}
		if status == http.StatusUnauthorized && len(token) >= 16 {
			if strings.Contains(body, token) || strings.Contains(rec.Header().Get("WWW-Authenticate"), token) {
				t.Fatalf("the answer echoes the token: %s", body)
			}
		}
	})
}
