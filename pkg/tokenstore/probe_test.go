package tokenstore

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestProbeKeyring(t *testing.T) {
	t.Run("works and leaves nothing behind", func(t *testing.T) {
		kr := newFakeKeyring()
		if err := probeKeyring(Options{}, kr); err != nil {
			t.Fatalf("probe: %v", err)
		}
		if us := kr.users(DefaultService); len(us) != 0 {
			t.Fatalf("probe left entries behind: %v", us)
		}
	})
	t.Run("failing keyring", func(t *testing.T) {
		kr := newFakeKeyring()
		kr.fail = errors.New("no such interface org.freedesktop.Secret.Service")
		err := probeKeyring(Options{}, kr)
		if !errors.Is(err, ErrKeyringUnavailable) || !strings.Contains(err.Error(), "write a test entry") {
			t.Fatalf("got %v, want ErrKeyringUnavailable on the write", err)
		}
	})
	t.Run("silent keyring times out", func(t *testing.T) {
		kr := newFakeKeyring()
		kr.block = make(chan struct{})
		defer close(kr.block)
		err := probeKeyring(Options{Timeout: time.Millisecond}, kr)
		if !errors.Is(err, ErrKeyringUnavailable) || !strings.Contains(err.Error(), "did not answer within 1ms") {
			t.Fatalf("got %v, want a timeout naming the store's timeout", err)
		}
	})
}
