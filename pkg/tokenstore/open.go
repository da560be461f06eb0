package tokenstore

import (
	"fmt"
	"io"
	"time"
)

// Store kinds accepted by Open (and by --token-store).
const (
	KindAuto    = "auto"
	KindKeyring = "keyring"
	KindFile    = "file"
)

// Defaults used by Open when an Options field is zero.
const (
	DefaultService   = "pbench-auth"
	DefaultTimeout   = 3 * time.Second
	DefaultChunkSize = 2000
)

// Options choose and configure a Store.
type Options struct {
	// Kind is "auto" (the default when empty), "keyring" or "file". auto
	// uses the OS keyring when it answers a probe within Timeout, and the
	// file store otherwise, after a one-line warning on Warn.
	Kind string
	// Dir is the file store's directory, normally $XDG_STATE_HOME/pbench-auth.
	// It is created 0700; token files are 0600. Required for "file" and "auto".
	Dir string
	// Warn receives auto's fallback warning (stderr). nil discards it, which
	// makes the downgrade silent: callers should always set it.
	Warn io.Writer
	// Timeout bounds every single keyring call (go-keyring has no timeout of
	// its own; a locked keyring or a Secret Service that never answers would
	// otherwise hang the CLI). Default 3s. A call that times out keeps running
	// in the background until the process exits.
	Timeout time.Duration
	// ChunkSize is the largest value written to one keyring entry. Default
	// 2000 bytes: Windows caps a credential at 2560 bytes, macOS at about 3 KB.
	ChunkSize int
	// Service is the keyring service name. Default "pbench-auth".
	Service string
}

func (o Options) withDefaults() Options {
	if o.Kind == "" {
		o.Kind = KindAuto
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.Service == "" {
		o.Service = DefaultService
	}
	if o.Warn == nil {
		o.Warn = io.Discard
	}
	return o
}

// Open returns the Store that o asks for. For "keyring" it does not touch
// the keyring yet: the first call reports a missing or locked keyring. For
// "auto" it probes the keyring once (bounded by Timeout).
func Open(o Options) (Store, error) {
	return open(o, systemKeyring{})
}

func open(o Options, kr keyringAPI) (Store, error) {
	o = o.withDefaults()
	switch o.Kind {
	case KindKeyring:
		return newKeyringStore(o, kr), nil
	case KindFile:
		return newFileStore(o.Dir)
	case KindAuto:
		ks := newKeyringStore(o, kr)
		probeErr := ks.probe()
		if probeErr == nil {
			return ks, nil
		}
		fs, err := newFileStore(o.Dir)
		if err != nil {
			return nil, fmt.Errorf("%w; and the file store: %w", probeErr, err)
		}
		return &warnStore{fileStore: fs, w: o.Warn, reason: probeErr}, nil
	default:
		return nil, fmt.Errorf("unknown token store %q: use auto, keyring or file", o.Kind)
	}
}
