// Package store keeps serve's API keys in a database: an embedded SQLite file
// (pure Go, modernc.org/sqlite, so builds stay CGO_ENABLED=0) for one
// replica, or PostgreSQL (jackc/pgx) shared by many. The schema's migrations
// are embedded and applied by pressly/goose when the store opens.
//
// The store holds no secret: only the SHA-256 of each key, never the key.
// Its errors never contain a key, a hash, or a database password.
package store

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

//go:embed migrations
var migrations embed.FS

// Kinds of store.
const (
	KindSQLite   = "sqlite"
	KindPostgres = "postgres"
)

// ErrNotFound is returned for a key id or hash that the store does not hold.
var ErrNotFound = errors.New("no such API key")

// queryTimeout bounds every statement, so that a database that stops
// answering turns into an error instead of a hung request.
const queryTimeout = 5 * time.Second

// Key is one stored API key. Hash is the SHA-256 of the key; the key itself
// is never stored.
type Key struct {
	ID     int64
	Hash   []byte
	Prefix string // a short non-secret beginning of the key, for people
	Label  string

	// The owner, as they were when the key was created.
	Subject  string
	Username string
	Email    string
	Roles    []string

	Created  time.Time
	Expires  time.Time // zero: never
	LastUsed time.Time // zero: never used
}

// Store is an open database of API keys, safe for concurrent use.
type Store struct {
	db   *sql.DB
	kind string
	pg   *pgx.ConnConfig // PostgreSQL only: for the LISTEN connection
}

// Location describes where a database URL points, without its password:
// neither the one in the user information nor a password or sslpassword
// query parameter (libpq and pgx take both).
func Location(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if q := u.Query(); q.Has("password") || q.Has("sslpassword") {
			for _, k := range []string{"password", "sslpassword"} {
				if q.Has(k) {
					q.Set(k, "xxxxx")
				}
			}
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	return dsn
}

// Open opens the database that dsn names and applies the embedded
// migrations:
//
//	postgres://USER@HOST:PORT/DB?sslmode=...   (also postgresql://; any libpq URL pgx takes)
//	sqlite:PATH                                an SQLite file, created 0600 (its directory 0700) if missing
//	PATH                                       the same, for a path without a scheme
//
// An SQLite file is refused when it is a symbolic link. A PostgreSQL
// connection attempt gives up after 5s unless the URL sets connect_timeout.
func Open(ctx context.Context, dsn string) (*Store, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(ctx, dsn)
	case strings.Contains(dsn, "://"):
		return nil, fmt.Errorf("database %q: want postgres://… or an SQLite file path (sqlite:PATH)", Location(dsn))
	case dsn == "", dsn == "sqlite:":
		return nil, errors.New("database: empty path: give an SQLite file path or a postgres:// URL")
	}
	return openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"))
}

func openPostgres(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors may quote the URL, password included.
		return nil, fmt.Errorf("database %s: not a valid PostgreSQL URL", Location(dsn))
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &Store{db: db, kind: KindPostgres, pg: cfg}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func openSQLite(ctx context.Context, path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("database directory: %w", err)
	}
	// Create the file ourselves: 0600, and never through a symbolic link.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600) // #nosec G304 -- the operator's database path
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("database %s is a symbolic link: give the real file's path", path)
		}
		return nil, fmt.Errorf("database: %w", err)
	}
	_ = f.Close()
	// WAL lets readers go on while a key is written; busy_timeout makes
	// concurrent writers wait for each other instead of failing; SQLite gives
	// its journal files the database file's permissions.
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	s := &Store{db: db, kind: KindSQLite}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// migrate brings the schema up to date. On PostgreSQL an advisory lock
// keeps replicas that start together from migrating at once.
func (s *Store) migrate(ctx context.Context) error {
	dialect := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if s.kind == KindPostgres {
		dialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 60))
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	fsys, err := fs.Sub(migrations, "migrations/"+s.kind)
	if err != nil {
		return err
	}
	opts = append(opts, goose.WithTableName("pbench_auth_schema"))
	p, err := goose.NewProvider(dialect, s.db, fsys, opts...)
	if err != nil {
		return fmt.Errorf("database migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("database %s: apply the schema: %w", s.kind, err)
	}
	return nil
}

// Kind is KindSQLite or KindPostgres.
func (s *Store) Kind() string { return s.kind }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	return s.db.PingContext(ctx)
}

func ms(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromMS(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMilli(n.Int64).UTC()
}

// Insert stores k and sets k.ID. k.Hash must be unique.
func (s *Store) Insert(ctx context.Context, k *Key) error {
	roles, err := json.Marshal(nonNil(k.Roles))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	err = s.db.QueryRowContext(ctx, `INSERT INTO api_keys
		(hash, prefix, label, subject, username, email, roles, created_ms, expires_ms)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
		k.Hash, k.Prefix, k.Label, k.Subject, k.Username, k.Email, string(roles),
		k.Created.UnixMilli(), ms(k.Expires)).Scan(&k.ID)
	if err != nil {
		return fmt.Errorf("store the API key: %w", err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

const columns = `id, hash, prefix, label, subject, username, email, roles, created_ms, expires_ms, last_used_ms`

type scanner interface{ Scan(dest ...any) error }

func scanKey(row scanner) (*Key, error) {
	var k Key
	var roles string
	var created int64
	var expires, lastUsed sql.NullInt64
	if err := row.Scan(&k.ID, &k.Hash, &k.Prefix, &k.Label, &k.Subject, &k.Username, &k.Email,
		&roles, &created, &expires, &lastUsed); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(roles), &k.Roles); err != nil {
		return nil, fmt.Errorf("API key %d: stored roles: %w", k.ID, err)
	}
	k.Created = time.UnixMilli(created).UTC()
	k.Expires, k.LastUsed = fromMS(expires), fromMS(lastUsed)
	return &k, nil
}

func (s *Store) one(ctx context.Context, where string, arg any) (*Key, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	k, err := scanKey(s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM api_keys WHERE `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read the API key: %w", err)
	}
	return k, nil
}

// ByHash returns the key whose SHA-256 is hash, or ErrNotFound.
func (s *Store) ByHash(ctx context.Context, hash []byte) (*Key, error) {
	return s.one(ctx, `hash = $1`, hash)
}

// ByID returns the key id, or ErrNotFound.
func (s *Store) ByID(ctx context.Context, id int64) (*Key, error) {
	return s.one(ctx, `id = $1`, id)
}

// List returns the keys of the owner subject, oldest first.
func (s *Store) List(ctx context.Context, subject string) ([]Key, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, `SELECT `+columns+` FROM api_keys WHERE subject = $1 ORDER BY id`, subject)
	if err != nil {
		return nil, fmt.Errorf("list the API keys: %w", err)
	}
	defer func() { _ = rows.Close() }()
	keys := []Key{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list the API keys: %w", err)
		}
		keys = append(keys, *k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list the API keys: %w", err)
	}
	return keys, nil
}

// NotifyChannel is the PostgreSQL channel on which Delete announces the id
// of each deleted key (see Watch).
const NotifyChannel = "pbench_auth_api_keys"

// Delete removes key id, or returns ErrNotFound. On PostgreSQL the deletion
// and its notification on NotifyChannel commit together.
func (s *Store) Delete(ctx context.Context, id int64) error {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete the API key: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `DELETE FROM api_keys WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete the API key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return ErrNotFound
	}
	if s.kind == KindPostgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, NotifyChannel, fmt.Sprint(id)); err != nil {
			return fmt.Errorf("delete the API key: announce it: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete the API key: %w", err)
	}
	return nil
}

// TouchLastUsed records that key id was used at t, unless a later use is
// already recorded.
func (s *Store) TouchLastUsed(ctx context.Context, id int64, t time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	_, err := s.db.ExecContext(ctx, `UPDATE api_keys SET last_used_ms = $2
		WHERE id = $1 AND (last_used_ms IS NULL OR last_used_ms < $2)`, id, t.UnixMilli())
	if err != nil {
		return fmt.Errorf("record the API key's last use: %w", err)
	}
	return nil
}
