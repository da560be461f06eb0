// Package pgtest runs a real PostgreSQL server (Debian's postgresql package)
// for tests: initdb in a fresh temporary directory, pg_ctl start with no TCP
// listener at all (only a Unix socket in that directory, so no port is ever
// chosen or shared), and stop and removal when the test ends. As root it
// runs them as the postgres user, which PostgreSQL requires.
//
// Outside CI a machine without PostgreSQL skips the test; in CI (CI=true),
// where scripts/install-deps.sh installs it, that is a failure.
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is one PostgreSQL server of a test.
type Server struct {
	dir  string // data in dir/data, socket in dir
	bin  string // the directory of initdb, pg_ctl and postgres
	asPG bool   // run the tools as the postgres user
	next atomic.Int64
}

// binDir finds PostgreSQL's programs: on PATH, else Debian's
// /usr/lib/postgresql/<version>/bin.
func binDir() string {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real)
		}
		return filepath.Dir(p)
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) == 0 {
		return ""
	}
	return filepath.Dir(matches[len(matches)-1])
}

// Start starts a PostgreSQL server that lives until t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := binDir()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("PostgreSQL is not installed (initdb, pg_ctl): scripts/install-deps.sh installs Debian's postgresql")
		}
		t.Skip("PostgreSQL is not installed (apt-get install postgresql); skipping")
	}
	dir, err := os.MkdirTemp("", "pgtest")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{dir: dir, bin: bin, asPG: os.Geteuid() == 0}
	t.Cleanup(func() {
		_ = s.pgctl("stop", "-m", "immediate")
		_ = os.RemoveAll(dir)
	})
	if s.asPG {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, PostgreSQL needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := s.command("initdb", "-D", s.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	s.Restart(t)
	return s
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) command(name string, args ...string) *exec.Cmd {
	prog := filepath.Join(s.bin, name)
	if s.asPG {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", prog}, args...)...) // #nosec G204 -- test helper
	}
	return exec.Command(prog, args...) // #nosec G204 -- test helper
}

func (s *Server) pgctl(args ...string) error {
	all := append([]string{"-D", s.data(), "-w", "-t", "60"}, args...)
	if out, err := s.command("pg_ctl", all...).CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl %s: %w\n%s", args[len(args)-1], err, out)
	}
	return nil
}

// Restart starts the server (again): it answers once this returns.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	opts := fmt.Sprintf("-c listen_addresses='' -k %s -c fsync=off -c full_page_writes=off", s.dir)
	if err := s.pgctl("-l", filepath.Join(s.dir, "log"), "-o", opts, "start"); err != nil {
		t.Fatal(err)
	}
}

// Stop stops the server at once (connections are cut) until Restart.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.pgctl("-m", "fast", "stop"); err != nil {
		t.Fatal(err)
	}
}

// URL is the postgres:// URL of database db on this server.
func (s *Server) URL(db string) string {
	q := url.Values{"host": {s.dir}, "user": {"postgres"}, "sslmode": {"disable"}}
	return "postgres:///" + db + "?" + q.Encode()
}

// NewDatabase creates an empty database and returns its URL.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test%d", s.next.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return s.URL(name)
}
