package errmark_test

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/internal/errmark"
)

func TestWith(t *testing.T) {
	kind := errors.New("kind")
	inner := &fs.PathError{Op: "open", Path: "x", Err: fs.ErrNotExist}
	err := errmark.With(kind, inner)
	if err.Error() != inner.Error() {
		t.Errorf("message %q, want %q", err, inner)
	}
	if !errors.Is(err, kind) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is misses the kind or the cause: %v", err)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe != inner {
		t.Error("errors.As misses the cause")
	}
	if errmark.With(kind, nil) != nil {
		t.Error("a nil error was marked")
	}
}
