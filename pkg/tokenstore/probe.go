package tokenstore

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// ProbeKeyring checks that the OS keyring can hold tokens: it writes a
// throw-away entry under o.Service, reads it back and deletes it, each call
// bounded by o.Timeout (default DefaultTimeout). It returns nil when all
// three work; otherwise an error that matches ErrKeyringUnavailable when the
// keyring cannot be used at all. Unlike "auto", which only reads, it proves
// that a login could save tokens. It never touches a profile's entries.
func ProbeKeyring(o Options) error {
	return probeKeyring(o, systemKeyring{})
}

// probeKeyPrefix starts every probe entry's name; profiles are URLs, so a
// name starting with '#' cannot collide with one.
const probeKeyPrefix = "#probe-"

func probeKeyring(o Options, kr keyringAPI) error {
	s := newKeyringStore(o.withDefaults(), kr)
	key, value := probeKeyPrefix+rand.Text(), rand.Text()
	if err := s.set(key, value); err != nil {
		return fmt.Errorf("write a test entry: %w", err)
	}
	got, err := s.get(key)
	if derr := s.del(key); derr != nil && err == nil {
		return fmt.Errorf("delete the test entry %q: %w", key, derr)
	}
	switch {
	case err != nil:
		return fmt.Errorf("read back a test entry: %w", err)
	case got != value:
		return errors.New("the keyring gave back another value than the one just written")
	}
	return nil
}
