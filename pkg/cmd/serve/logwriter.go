package serve

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Defaults of the log buffer of serve.
const (
	// logFlushInterval bounds how long a log line waits in the buffer.
	logFlushInterval = 100 * time.Millisecond
	// logBufferSize is the buffered size beyond which it is written at once.
	logBufferSize = 32 << 10
)

// logWriter buffers serve's request lines (one per request) and writes them
// out together: at most logFlushInterval after the first line of a batch,
// when logBufferSize is reached, with any other line (flushHandler: key
// loads, reloads, warnings, errors are written at once), and at shutdown
// (Flush). Under load this turns one write(2) per request into one per
// batch, several microseconds of CPU per request, without dropping or
// shortening any line. A process killed with SIGKILL loses the request
// lines of the last interval.
type logWriter struct {
	mu       sync.Mutex
	w        io.Writer
	buf      []byte
	interval time.Duration
	timer    *time.Timer
	pending  bool // a flush is scheduled
}

func newLogWriter(w io.Writer, interval time.Duration) *logWriter {
	return &logWriter{w: w, interval: interval, buf: make([]byte, 0, logBufferSize)}
}

// Write buffers p whole (slog writes one record per call) and never fails:
// an error of the underlying writer is returned by Flush.
func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	switch {
	case len(l.buf) >= logBufferSize:
		_ = l.flushLocked()
	case !l.pending:
		l.pending = true
		if l.timer == nil {
			l.timer = time.AfterFunc(l.interval, func() { _ = l.Flush() })
		} else {
			l.timer.Reset(l.interval)
		}
	}
	return len(p), nil
}

// Flush writes out what is buffered.
func (l *logWriter) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.flushLocked()
}

func (l *logWriter) flushLocked() error {
	l.pending = false
	if len(l.buf) == 0 {
		return nil
	}
	_, err := l.w.Write(l.buf)
	if cap(l.buf) > 4*logBufferSize {
		l.buf = make([]byte, 0, logBufferSize) // do not keep a burst's buffer
	} else {
		l.buf = l.buf[:0]
	}
	return err
}

// requestMessage is the message of the server's per-request line (see
// server.logRequests), the only one left in the buffer.
const requestMessage = "request"

// flushHandler writes every line but the request lines out at once, with
// what was buffered before it.
type flushHandler struct {
	slog.Handler
	lw *logWriter
}

func (h flushHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level != slog.LevelInfo || r.Message != requestMessage {
		if ferr := h.lw.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h flushHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return flushHandler{h.Handler.WithAttrs(attrs), h.lw}
}

func (h flushHandler) WithGroup(name string) slog.Handler {
	return flushHandler{h.Handler.WithGroup(name), h.lw}
}
