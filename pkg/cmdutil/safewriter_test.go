package cmdutil

import (
	"bytes"
	"testing"
)

func TestSafeWriter(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text, ünïcødé ✓\n\ttab\n", "plain text, ünïcødé ✓\n\ttab\n"},
		{"error: \x1b]0;pwned\x07\x1b[2Jgone", `error: \x1b]0;pwned\x07\x1b[2Jgone`},
		{"over\rwrite", `over\rwrite`},
		{"del\x7f nul\x00", `del\x7f nul\x00`},
		{"c1 \u009b31m", `c1 \u009b31m`},
		{"bad \xff\xfe utf8", `bad \xff\xfe utf8`},
	} {
		var b bytes.Buffer
		w := NewSafeWriter(&b)
		n, err := w.Write([]byte(tc.in))
		if err != nil || n != len(tc.in) {
			t.Errorf("%q: wrote %d, %v", tc.in, n, err)
		}
		if b.String() != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, b.String(), tc.want)
		}
	}
}

// A rune split across writes is put back together, not escaped.
func TestSafeWriterSplitRune(t *testing.T) {
	var b bytes.Buffer
	w := NewSafeWriter(&b)
	s := []byte("a✓b")
	for _, part := range [][]byte{s[:2], s[2:3], s[3:]} {
		if _, err := w.Write(part); err != nil {
			t.Fatal(err)
		}
	}
	if b.String() != "a✓b" {
		t.Errorf("got %q", b.String())
	}
}

func FuzzSafeWriter(f *testing.F) {
	for _, s := range []string{"\x1b[31m", "a\u009bb", "\xe2\x9c", "ok\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var b bytes.Buffer
		_, _ = NewSafeWriter(&b).Write([]byte(in))
		for _, r := range b.String() {
			if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r < 0xa0) {
				t.Fatalf("%q passed %q", in, r)
			}
		}
	})
}
