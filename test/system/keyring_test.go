package system

import (
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// silentBus is a unix socket where a D-Bus session bus would be that takes
// connections and never answers: a Secret Service that hangs (a locked
// keyring prompt nobody sees, a stuck daemon). It counts the connections.
type silentBus struct {
	addr  string // for DBUS_SESSION_BUS_ADDRESS
	path  string
	conns chan net.Conn // accepted, in the order the clients connected
}

func newSilentBus(t *testing.T) *silentBus {
	t.Helper()
	b := &silentBus{path: filepath.Join(t.TempDir(), "bus"), conns: make(chan net.Conn, 64)}
	b.addr = "unix:path=" + b.path
	ln, err := net.Listen("unix", b.path)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(b.conns)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.conns <- c
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		for c := range b.conns {
			_ = c.Close()
		}
	})
	return b
}

// connections returns how many clients connected before this call, once
// they have exited: it connects as a marker and counts the connections
// accepted ahead of it (a unix listener accepts in connection order; a
// client's first byte is D-Bus's NUL, the marker's is 'M').
func (b *silentBus) connections(t *testing.T) int {
	t.Helper()
	marker, err := net.Dial("unix", b.path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = marker.Close() }()
	if _, err := marker.Write([]byte("M")); err != nil {
		t.Fatal(err)
	}
	n := 0
	for c := range b.conns {
		first := make([]byte, 1)
		_, _ = io.ReadFull(c, first) // EOF from a client that connected and left counts too
		_ = c.Close()
		if first[0] == 'M' {
			return n
		}
		n++
	}
	t.Fatal("the silent bus closed before the marker arrived")
	return 0
}

// TestKeyringThatNeverAnswers runs the real binary against a session bus
// that never answers. In keyring mode, status, token, call and logout end
// with a clear error naming the cause, the 3s default and the way out,
// having connected to the bus once (a second connection would be a second
// wait of the timeout); in auto mode the warning names the file used
// instead.
//
// That status does not ask the hung keyring a second time is not visible
// here: the second ask would queue, inside the process, behind the first
// one's bus connection, without reaching the bus.
func TestKeyringThatNeverAnswers(t *testing.T) {
	const want = "the OS keyring did not answer within 3s (locked or no Secret Service?): unlock it, or use --token-store file"
	for _, args := range [][]string{{"status"}, {"token"}, {"call", "/api/v1/user"}, {"logout"}} {
		cmd := args[0]
		t.Run(cmd+" keyring", func(t *testing.T) {
			t.Parallel()
			bus := newSilentBus(t)
			c := newCLI(t, "DBUS_SESSION_BUS_ADDRESS="+bus.addr, "PBENCH_SERVER=http://127.0.0.1:9")
			r := c.run(append(args, "--token-store", "keyring")...)
			if r.code == 0 || !strings.Contains(r.stderr+r.stdout, want) {
				t.Fatalf("exit %d, output %q %q; want a failure saying %q", r.code, r.stdout, r.stderr, want)
			}
			if n := bus.connections(t); n != 1 {
				t.Errorf("%s connected to the bus %d times, want once", cmd, n)
			}
		})
	}
	t.Run("status auto", func(t *testing.T) {
		t.Parallel()
		bus := newSilentBus(t)
		c := newCLI(t, "DBUS_SESSION_BUS_ADDRESS="+bus.addr, "PBENCH_SERVER=http://127.0.0.1:9")
		r := c.run("status", "--token-store", "auto")
		if !strings.Contains(r.stderr, "warning: the OS keyring did not answer within 3s") ||
			!strings.Contains(r.stderr, filepath.Join(c.dir, "state", "pbench-auth")) || !strings.Contains(r.stderr+r.stdout, "not logged in") {
			t.Errorf("exit %d, output %q %q; want the fallback warning naming the file, then not logged in", r.code, r.stdout, r.stderr)
		}
		if n := bus.connections(t); n != 1 {
			t.Errorf("status --token-store auto connected to the bus %d times, want once", n)
		}
	})
}
