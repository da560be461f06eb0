package serve

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingWriter keeps what was written and signals each write.
type recordingWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	wrote  chan struct{}
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	n, err := w.buf.Write(p)
	select {
	case w.wrote <- struct{}{}:
	default:
	}
	return n, err
}

func (w *recordingWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestLogWriterBatchesLines: request lines wait in the buffer, any other
// line (a warning, an info line such as a key load) writes them out with
// itself in one write, in order, and Flush writes out the rest.
func TestLogWriterBatchesLines(t *testing.T) {
	out := &recordingWriter{wrote: make(chan struct{}, 1)}
	lw := newLogWriter(out, time.Hour)
	log := newLogger(lw, "text")
	for i := range 3 {
		log.Info("request", "n", i)
	}
	if s := out.String(); s != "" {
		t.Fatalf("info lines written before a flush: %q", s)
	}
	log.Warn("upstream request failed")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "n=0") || !strings.Contains(lines[2], "n=2") ||
		!strings.Contains(lines[3], "level=WARN") || out.writes != 1 {
		t.Fatalf("after a warning, %d writes: %q", out.writes, lines)
	}
	log.With("component", "x").Error("boom")
	if !strings.Contains(out.String(), "component=x") {
		t.Errorf("an error of a derived logger was not written at once: %q", out.String())
	}
	log.Info("request", "n", 3)
	log.Info("reloaded the TLS certificate")
	if o := out.String(); !strings.Contains(o, "n=3") || !strings.HasSuffix(o, "msg=\"reloaded the TLS certificate\"\n") {
		t.Errorf("an info line other than a request line was not written at once, after the buffered ones: %q", o)
	}
	log.Info("request", "n", 4)
	if err := lw.Flush(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "n=4\n") {
		t.Errorf("Flush left a line behind: %q", out.String())
	}
}

// TestLogWriterFlushesOnTimeAndSize: a lone line is written out without
// any call (after the interval), and a full buffer at once.
func TestLogWriterFlushesOnTimeAndSize(t *testing.T) {
	out := &recordingWriter{wrote: make(chan struct{}, 1)}
	lw := newLogWriter(out, time.Millisecond)
	slog.New(slog.NewJSONHandler(lw, nil)).Info("request", "path", "/api/v1/user")
	select {
	case <-out.wrote:
	case <-time.After(time.Minute):
		t.Fatal("a buffered line was never written out")
	}
	if !strings.Contains(out.String(), `"path":"/api/v1/user"`) {
		t.Errorf("written: %q", out.String())
	}

	out = &recordingWriter{wrote: make(chan struct{}, 1)}
	lw = newLogWriter(out, time.Hour)
	line := strings.Repeat("x", 1000) + "\n"
	n := 0
	for out.String() == "" {
		if _, err := lw.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		if n++; n > logBufferSize/len(line)+1 {
			t.Fatalf("nothing written after %d bytes", n*len(line))
		}
	}
	if got := len(out.String()); got < logBufferSize || got%len(line) != 0 {
		t.Errorf("wrote %d bytes at once, want whole lines, at least %d", got, logBufferSize)
	}
}
