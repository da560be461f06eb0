package cmdutil

import (
	"os"
	"testing"
)

// /dev/null is a character device but not a terminal: output redirected
// there must not be decorated for people.
func TestDevNullIsNotATerminal(t *testing.T) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("%s is not a character device: %v", os.DevNull, err)
	}
	if isTerminal(f) {
		t.Errorf("%s counts as a terminal", os.DevNull)
	}
}
