package status

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/session"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// hungKeyring answers every Load as a keyring that timed out, and counts
// how often it was asked: each ask costs the user the whole timeout.
type hungKeyring struct {
	tokenstore.Store
	loads atomic.Int32
}

func (k *hungKeyring) Load(string) (*tokenstore.TokenSet, error) {
	k.loads.Add(1)
	return nil, fmt.Errorf("%w: the OS keyring did not answer within 3s", tokenstore.ErrKeyringUnavailable)
}
func (k *hungKeyring) Kind() string           { return tokenstore.KindKeyring }
func (k *hungKeyring) Location(string) string { return "keyring service pbench-auth" }

// A keyring that does not answer is asked once, not once more to show what
// is stored: the user waits one timeout, not two.
func TestHungKeyringIsAskedOnce(t *testing.T) {
	store := &hungKeyring{}
	ios, _, _, errOut := cmdutil.Test()
	opts := &Options{
		IO:     ios,
		Now:    time.Now,
		Server: func(string) (string, error) { return "https://pbench.example.com", nil },
		Sessions: func(string, string) (*session.Manager, error) {
			return &session.Manager{Store: store, Now: time.Now, LockDir: t.TempDir()}, nil
		},
	}
	err := run(t.Context(), opts)
	if err == nil {
		t.Fatal("status with a hung keyring succeeded")
	}
	if n := store.loads.Load(); n != 1 {
		t.Errorf("the keyring was asked %d times, want 1", n)
	}
	if !strings.Contains(errOut.String()+err.Error(), "did not answer within 3s") {
		t.Errorf("stderr %q, error %v: want the keyring's message", errOut, err)
	}
}
