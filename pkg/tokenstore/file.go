package tokenstore

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// fileStore keeps one JSON file per profile in dir. Files are 0600 in a
// 0700 directory and replaced atomically (temp file + rename), so a reader
// never sees half a token set. A file that others can read is refused.
type fileStore struct {
	dir string
}

// fileRecord is a file's content: the profile is kept inside, because the
// file name is only a lossy, filesystem-safe form of it.
type fileRecord struct {
	Profile string    `json:"profile"`
	Tokens  *TokenSet `json:"tokens"`
}

const fileSuffix = ".tokens.json"

func newFileStore(dir string) (*fileStore, error) {
	if dir == "" {
		return nil, errors.New("file token store: no directory given")
	}
	return &fileStore{dir: dir}, nil
}

func (s *fileStore) Kind() string { return KindFile }

// Location is the path of the profile's file.
func (s *fileStore) Location(profile string) string {
	return filepath.Join(s.dir, fileName(profile))
}

// fileName is a readable, filesystem-safe form of profile plus a short hash
// of it, so that two profiles never share a file.
func fileName(profile string) string {
	safe := strings.Map(func(r rune) rune {
		if r < 128 && (r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, profile)
	if len(safe) > 80 {
		safe = safe[:80]
	}
	sum := sha256.Sum256([]byte(profile))
	return safe + "-" + hex.EncodeToString(sum[:6]) + fileSuffix
}

func (s *fileStore) Load(profile string) (*TokenSet, error) {
	rec, err := s.read(s.Location(profile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if rec.Profile != profile || rec.Tokens == nil {
		return nil, ErrNotFound
	}
	return rec.Tokens, nil
}

func (s *fileStore) read(path string) (*fileRecord, error) {
	f, err := os.Open(path) // #nosec G304 -- path is derived from our own directory and a hashed name
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	if runtime.GOOS != "windows" {
		fi, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("token file %s: %w", path, err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			return nil, fmt.Errorf("token file %s has mode %04o, so other users may read your tokens: run `chmod 600 %s` (and log in again if they could have been copied)", path, perm, path)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read token file %s: %w", path, err)
	}
	var rec fileRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("token file %s is not readable (delete it and log in again): %w", path, err)
	}
	return &rec, nil
}

func (s *fileStore) Save(profile string, ts *TokenSet) error {
	b, err := json.MarshalIndent(fileRecord{Profile: profile, Tokens: ts}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode tokens: %w", err)
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("create token directory: %w", err)
	}
	path := s.Location(profile)
	tmp, err := os.CreateTemp(s.dir, ".tmp-*") // created 0600
	if err != nil {
		return fmt.Errorf("save tokens: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // a no-op after the rename
	if err := tmp.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		_ = tmp.Close()
		return fmt.Errorf("save tokens: %w", err)
	}
	_, werr := tmp.Write(b)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("save tokens to %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save tokens to %s: %w", path, err)
	}
	return nil
}

func (s *fileStore) Delete(profile string) error {
	err := os.Remove(s.Location(profile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete tokens of %s: %w", profile, err)
	}
	return nil
}

func (s *fileStore) List() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list profiles: %w", err)
	}
	var ps []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), fileSuffix) {
			continue
		}
		rec, err := s.read(filepath.Join(s.dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("list profiles: %w", err)
		}
		if rec.Profile != "" {
			ps = append(ps, rec.Profile)
		}
	}
	return ps, nil
}

// warnStore is the file store chosen by "auto" because the keyring did not
// work: the first time it is used it says so, naming the file.
type warnStore struct {
	*fileStore
	w      io.Writer
	reason error
	once   sync.Once
}

func (s *warnStore) warn(profile string) {
	s.once.Do(func() {
		where := s.dir
		if profile != "" {
			where = s.Location(profile)
		}
		_, _ = fmt.Fprintf(s.w, "warning: %v; keeping tokens in the file %s instead\n", s.reason, where)
	})
}

func (s *warnStore) Load(profile string) (*TokenSet, error) {
	s.warn(profile)
	return s.fileStore.Load(profile)
}

func (s *warnStore) Save(profile string, ts *TokenSet) error {
	s.warn(profile)
	return s.fileStore.Save(profile, ts)
}

func (s *warnStore) Delete(profile string) error {
	s.warn(profile)
	return s.fileStore.Delete(profile)
}

func (s *warnStore) List() ([]string, error) {
	s.warn("")
	return s.fileStore.List()
}
