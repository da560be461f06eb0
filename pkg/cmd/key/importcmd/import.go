// Package importcmd implements `pbench-auth key import`: it brings the API
// keys of a Pbench server's database over to serve's, as hashes, so that
// Pbench agents keep working with the keys they have.
package importcmd

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/server/apikey"
	"github.com/distributed-system-analysis/pbench-auth/server/store"
)

// Options are the parsed flags of `key import`.
type Options struct {
	IO       *cmdutil.IOStreams
	StateDir func() string

	From     string // Pbench's database URL
	Database string // serve's database ("" = serve's default)
	DryRun   bool
}

// NewCmd builds `key import`. runF replaces the behaviour in tests.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: f.IO, StateDir: f.StateDir}
	cmd := &cobra.Command{
		Use:   "import --from postgres://PBENCH-DB [--database SERVE-DB]",
		Short: "Bring a Pbench server's API keys over to serve's database",
		Long: `Read the API keys of a Pbench server from its PostgreSQL database (tables api_keys
and users) and store their SHA-256 hashes, with their label, creation time, owner
(id, username) and the owner's roles, in the database of pbench-auth serve: the
Pbench agents keep sending the keys they have, and serve accepts them.

Pbench keeps keys verbatim; serve keeps only hashes, so the keys cannot be shown
again (key list shows them as "pbench-legacy"). Keys already imported are skipped,
so running it again is safe. Run it where both databases can be reached, with the
same --database that serve uses; serve need not be stopped.`,
		Example: `  PGPASSWORD=… pbench-auth key import --from postgres://pbench@pbench-db/pbench \
      --database postgres://pbench_auth@keys-db/pbench_auth`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.From == "" {
				return cmdutil.Usagef("--from is required: the URL of the Pbench server's PostgreSQL database")
			}
			if runF != nil {
				return runF(opts)
			}
			return run(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.From, "from", "", "the Pbench server's PostgreSQL database, postgres://USER@HOST/DB (required)")
	cmd.Flags().StringVar(&opts.Database, "database", "", "serve's database, as its --database (default $XDG_STATE_HOME/pbench-auth/serve/apikeys.db)")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "read and count the keys, store nothing")
	return cmd
}

// pbenchKey is one row of Pbench's api_keys with its owner.
type pbenchKey struct {
	key, label, userID, username, roles string
	created                             time.Time
}

func run(ctx context.Context, opts *Options) error {
	rows, err := readPbench(ctx, opts.From)
	if err != nil {
		return err
	}
	if opts.DryRun {
		_, _ = fmt.Fprintf(opts.IO.ErrOut, "%d API keys found in %s; nothing stored (--dry-run)\n", len(rows), store.Location(opts.From))
		return nil
	}
	dsn := opts.Database
	if dsn == "" {
		dsn = filepath.Join(opts.StateDir(), "serve", "apikeys.db")
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return fmt.Errorf("open serve's database: %w", err)
	}
	defer func() { _ = st.Close() }()
	added, skipped := 0, 0
	for _, r := range rows {
		hash := apikey.Hash(r.key)
		switch _, err := st.ByHash(ctx, hash[:]); {
		case err == nil:
			skipped++
			continue
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("after %d keys: %w", added, err)
		}
		var roles []string
		for _, role := range strings.Split(r.roles, ";") {
			if role = strings.TrimSpace(role); role != "" && !slices.Contains(roles, role) {
				roles = append(roles, role)
			}
		}
		k := &store.Key{
			Hash: hash[:], Prefix: apikey.ShownPrefix(r.key), Label: r.label,
			Subject: r.userID, Username: r.username, Roles: roles, Created: r.created.UTC(),
		}
		if err := st.Insert(ctx, k); err != nil {
			return fmt.Errorf("after %d keys: %w", added, err)
		}
		added++
	}
	_, _ = fmt.Fprintf(opts.IO.ErrOut, "imported %d API keys into %s (%d already there)\n", added, store.Location(dsn), skipped)
	return nil
}

// readPbench reads every API key of a Pbench database. Pbench named the
// columns key/label (current) or api_key/name (before its 2023 rework).
func readPbench(ctx context.Context, dsn string) ([]pbenchKey, error) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return nil, cmdutil.Usagef("--from %q: want the postgres:// URL of the Pbench server's database", store.Location(dsn))
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, cmdutil.Usagef("--from %s: not a valid PostgreSQL URL", store.Location(dsn))
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, cmdutil.WithExitCode(cmdutil.ExitNetwork, fmt.Errorf("connect to Pbench's database %s: %w", store.Location(dsn), err))
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	cols := map[string]bool{}
	crows, err := conn.Query(ctx, `SELECT column_name FROM information_schema.columns WHERE table_name = 'api_keys'`)
	if err != nil {
		return nil, fmt.Errorf("read Pbench's api_keys table: %w", err)
	}
	for crows.Next() {
		var c string
		if err := crows.Scan(&c); err != nil {
			return nil, err
		}
		cols[c] = true
	}
	if err := crows.Err(); err != nil {
		return nil, err
	}
	keyCol, labelCol := "key", "''"
	switch {
	case cols["key"]:
	case cols["api_key"]:
		keyCol = "api_key"
	default:
		return nil, fmt.Errorf("%s has no api_keys table with a key or api_key column: is it a Pbench server's database?", store.Location(dsn))
	}
	switch {
	case cols["label"]:
		labelCol = "COALESCE(k.label, '')"
	case cols["name"]:
		labelCol = "COALESCE(k.name, '')"
	}
	rows, err := conn.Query(ctx, `SELECT k.`+keyCol+`, `+labelCol+`, k.created, k.user_id, u.username, COALESCE(u._roles, '')
		FROM api_keys k JOIN users u ON u.id = k.user_id`)
	if err != nil {
		return nil, fmt.Errorf("read Pbench's api_keys: %w", err)
	}
	var out []pbenchKey
	for rows.Next() {
		var r pbenchKey
		if err := rows.Scan(&r.key, &r.label, &r.created, &r.userID, &r.username, &r.roles); err != nil {
			return nil, fmt.Errorf("read Pbench's api_keys: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read Pbench's api_keys: %w", err)
	}
	return out, nil
}
