//go:build linux

package testutil

import (
	"net"
	"strconv"
	"syscall"
	"testing"
)

// ReserveAddr returns a 127.0.0.1 address whose port is held for the whole
// test by a socket that is bound but never listens, with SO_REUSEADDR. So:
//
//   - connections to it are refused (ECONNREFUSED) while nothing listens
//     there: it is the address of a server that is down;
//   - the kernel gives the port to no one else: neither a bind to port 0 nor
//     an outgoing connection picks a port that a bound socket holds;
//   - a process told to listen on exactly this address can (Go's net.Listen
//     sets SO_REUSEADDR, and Linux lets SO_REUSEADDR sockets share a port
//     while at most one listens), and again after a restart.
//
// Use it for a process that must know its own URL before it starts, or be
// restarted on the same address; where a process or server can report the
// port it chose, listening on 127.0.0.1:0 is simpler.
func ReserveAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}
