package testutil

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
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

func TestFreeAddrCanBeListenedOn(t *testing.T) {
	addr := FreeAddr(t)
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("FreeAddr = %q (%v), want 127.0.0.1:port", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	_ = ln.Close()
}
