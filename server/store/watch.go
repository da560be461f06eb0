package store

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Events receives what Watch sees. Every field is required.
type Events struct {
	// Deleted is called with the id of each key that any replica deletes.
	Deleted func(id int64)
	// Synced(t) says that every deletion committed before t has been
	// passed to Deleted.
	Synced func(t time.Time)
	// Lost says that the connection is lost: deletions may go unseen
	// until the next Synced.
	Lost func(err error)
}

// SyncInterval is how often Watch confirms that its connection is alive
// when no notification comes: the age of the last Synced stays below about
// twice this (plus a round trip) while the database answers.
const SyncInterval = 200 * time.Millisecond

// Watch follows the deletions that every replica announces on NotifyChannel
// (PostgreSQL LISTEN) until ctx is done, reconnecting after a failure. On
// SQLite, which only this process writes, it returns at once.
func (s *Store) Watch(ctx context.Context, ev Events) {
	if s.kind != KindPostgres {
		return
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := s.watch(ctx, ev)
		if ctx.Err() != nil {
			return
		}
		ev.Lost(err)
		if time.Since(start) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// watch runs one LISTEN connection until it fails.
func (s *Store) watch(ctx context.Context, ev Events) error {
	conn, err := pgx.ConnectConfig(ctx, s.pg)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{NotifyChannel}.Sanitize()); err != nil {
		return err
	}
	deliver := func(n *pgconn.Notification) {
		if id, err := strconv.ParseInt(n.Payload, 10, 64); err == nil {
			ev.Deleted(id)
		}
	}
	done, cancelDone := context.WithCancel(ctx)
	cancelDone() // a done context: WaitForNotification only hands out what is buffered
	for {
		// A round trip on the listening session: PostgreSQL sends the
		// notifications committed before it ahead of its answer, so once
		// they are delivered, every deletion before t0 is known.
		t0 := time.Now()
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := conn.Exec(pctx, "SELECT 1")
		cancel()
		if err != nil {
			return err
		}
		for {
			n, err := conn.WaitForNotification(done)
			if err != nil || n == nil {
				break
			}
			deliver(n)
		}
		ev.Synced(t0)
		wctx, cancel := context.WithTimeout(ctx, SyncInterval)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case n != nil:
			deliver(n)
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err):
			if conn.IsClosed() {
				return err
			}
		default:
			return err
		}
	}
}
