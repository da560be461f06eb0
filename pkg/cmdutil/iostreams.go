package cmdutil

import (
	"bytes"
	"io"
	"os"

	"golang.org/x/term"
)

// IOStreams separates data (Out) from messages for people (ErrOut). Commands
// decorate output only when the matching stream is a terminal, so that
// `pbench-auth token` and `pbench-auth call` are always safe to pipe.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	InTTY  bool
	OutTTY bool
	ErrTTY bool
}

// System returns the process's standard streams. Messages (stderr) always,
// and data (stdout) when it is a terminal, go through a SafeWriter: control
// characters in what a broker or server said are shown, never obeyed.
// Piped stdout is passed on untouched.
func System() *IOStreams {
	ios := &IOStreams{
		In:     os.Stdin,
		Out:    os.Stdout,
		ErrOut: NewSafeWriter(os.Stderr),
		InTTY:  isTerminal(os.Stdin),
		OutTTY: isTerminal(os.Stdout),
		ErrTTY: isTerminal(os.Stderr),
	}
	if ios.OutTTY {
		ios.Out = NewSafeWriter(os.Stdout)
	}
	return ios
}

// Test returns streams backed by buffers, none of them a terminal.
func Test() (ios *IOStreams, in, out, errOut *bytes.Buffer) {
	in, out, errOut = &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

// isTerminal reports whether f is a terminal. A character device is not
// enough: /dev/null is one, and output redirected there is not for people.
func isTerminal(f *os.File) bool {
	return term.IsTerminal(int(f.Fd())) // #nosec G115 -- a file descriptor fits in an int
}
