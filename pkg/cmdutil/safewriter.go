package cmdutil

import (
	"fmt"
	"io"
	"sync"
	"unicode/utf8"
)

// SafeWriter passes text on with every control character but newline and
// tab written as a visible escape (ESC as \x1b, BEL as \x07, a carriage
// return as \r, C1 controls as \u0080..\u009f), and bytes that are not UTF-8
// as \xNN. What brokers and servers say (error texts, names, descriptions)
// reaches people's terminals through it, so a peer cannot move the cursor,
// retitle the window, rewrite earlier lines, or hide text.
//
// A rune split between two writes is held back until the next write (at
// most 3 bytes). It is safe for concurrent use.
type SafeWriter struct {
	w io.Writer

	mu    sync.Mutex
	carry []byte
}

// NewSafeWriter wraps w.
func NewSafeWriter(w io.Writer) *SafeWriter { return &SafeWriter{w: w} }

func (s *SafeWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf := append(s.carry, p...)
	s.carry = nil
	out := make([]byte, 0, len(buf)+16)
	for i := 0; i < len(buf); {
		c := buf[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f):
				out = append(out, c)
			case c == '\r':
				out = append(out, `\r`...)
			default:
				out = fmt.Appendf(out, `\x%02x`, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(buf[i:])
		if r == utf8.RuneError && size <= 1 {
			if !utf8.FullRune(buf[i:]) && len(buf)-i < utf8.UTFMax {
				s.carry = append([]byte(nil), buf[i:]...) // the rest comes next
				break
			}
			out = fmt.Appendf(out, `\x%02x`, c)
			i++
			continue
		}
		if r >= 0x80 && r < 0xa0 {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, buf[i:i+size]...)
		}
		i += size
	}
	if _, err := s.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}
