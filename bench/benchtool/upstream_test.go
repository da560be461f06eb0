package main

import (
	"net"
	"testing"
)

// TestCountConns: the connections this process opened to a port are found
// in /proc, and those to another port are not counted.
func TestCountConns(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer func() { _ = c.Close() }()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
	}
	// Our 3 client ends have remote port = port; the 3 accepted ends have
	// it as their local port and are not counted.
	if n, err := countConns("/proc/self", port); err != nil || n != 3 {
		t.Errorf("countConns = %d, %v; want 3", n, err)
	}
	if n, err := countConns("/proc/self", port+1); err != nil || n != 0 {
		t.Errorf("countConns(another port) = %d, %v; want 0", n, err)
	}
	if p, err := listeningPort("/proc/self"); err != nil || p != port {
		t.Errorf("listeningPort = %d, %v; want %d", p, err, port)
	}
}
