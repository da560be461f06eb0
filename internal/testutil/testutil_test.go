package testutil

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestSyncBufferConcurrentWriters(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_, _ = fmt.Fprintf(&b, "w%d\n", i)
			}
		}()
	}
	wg.Wait()
	got := b.String()
	for i := range 8 {
		if n := strings.Count(got, fmt.Sprintf("w%d\n", i)); n != 100 {
			t.Errorf("writer %d: %d lines, want 100", i, n)
		}
	}
}

func TestReserveAddr(t *testing.T) {
	addr := ReserveAddr(t)
	if host, _, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" {
		t.Fatalf("ReserveAddr = %q (%v), want 127.0.0.1:port", addr, err)
	}
	refused := func(when string) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if c != nil {
			_ = c.Close()
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial %s %s: %v, want connection refused", addr, when, err)
		}
	}
	refused("before anyone listens")

	// Held: a bind without SO_REUSEADDR (what an unrelated program does) fails.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Close(fd) }()
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: p}); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("plain bind to %s: %v, want address in use", addr, err)
	}
	// Ports the kernel picks never are this one.
	for range 200 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := ln.Addr().String()
		_ = ln.Close()
		if got == addr {
			t.Fatalf("the kernel handed out the reserved %s", addr)
		}
	}

	// The process it is meant for listens there, and again after a restart.
	for i := range 2 {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen %d on %s: %v", i, addr, err)
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial while listening: %v", err)
		}
		_ = c.Close()
		_ = ln.Close()
		refused("after the listener closed")
	}
}

func TestClock(t *testing.T) {
	start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	c := NewClock(start)
	if !c.Now().Equal(start) {
		t.Fatalf("Now = %v, want %v", c.Now(), start)
	}
	c.Advance(90 * time.Second)
	if got := c.Now(); !got.Equal(start.Add(90*time.Second)) || got.Location() != time.UTC {
		t.Fatalf("after Advance: %v", got)
	}
}
