package tokenstore

import (
	"strings"
	"sync"
	"testing"
)

// TestKeyringDamagedHeaderBounds: chunks are read all at once, so a header
// claiming absurd sizes is refused before any chunk beyond those read
// together with the header.
func TestKeyringDamagedHeaderBounds(t *testing.T) {
	const profile = "https://pbench.example.com"
	for name, header := range map[string]string{
		"a billion chunks":          `{"v":1,"chunks":1000000000,"len":5000,"sha256":""}`,
		"more chunks than bytes":    `{"v":1,"chunks":6,"len":5,"sha256":""}`,
		"length beyond the maximum": `{"v":1,"chunks":2,"len":2000000000,"sha256":""}`,
		"negative length":           `{"v":1,"chunks":1,"len":-1,"sha256":""}`,
	} {
		t.Run(name, func(t *testing.T) {
			kr := newFakeKeyring()
			s, err := open(Options{Kind: KindKeyring}, kr)
			if err != nil {
				t.Fatal(err)
			}
			_ = kr.Set(DefaultService, profile, header)
			var mu sync.Mutex
			var reads []string
			kr.afterGet = func(user string) { mu.Lock(); reads = append(reads, user); mu.Unlock() }
			_, err = s.Load(profile)
			if err == nil || !strings.Contains(err.Error(), "unknown format") {
				t.Errorf("Load with header %s: %v, want an unknown-format error", header, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(reads) != 1+readAhead {
				t.Errorf("Load read %v, want the header and the first %d chunks only", reads, readAhead)
			}
		})
	}
}
