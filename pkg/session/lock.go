package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// lockRetry is how often a waiting process retries the lock.
const lockRetry = 50 * time.Millisecond

func lockPath(dir, profile string) string {
	sum := sha256.Sum256([]byte(profile))
	return filepath.Join(dir, hex.EncodeToString(sum[:8])+".lock")
}

// lockFile takes an exclusive lock on path, waiting until ctx is done. The
// lock file stays on disk (removing it would let two processes lock two
// different files); it is empty.
func lockFile(ctx context.Context, path string) (func(), error) {
	fl := flock.New(path, flock.SetFlag(os.O_CREATE|os.O_RDWR), flock.SetPermissions(0o600))
	ok, err := fl.TryLockContext(ctx, lockRetry)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if !ok {
		return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
	}
	return func() { _ = fl.Unlock() }, nil
}
