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
	"strings"
	"sync"
)

// fileStore keeps one JSON file per profile in dir. Files are 0600 in a
// 0700 directory and replaced atomically (temp file + rename), so a reader
// never sees half a token set. As ssh does with ~/.ssh, it trusts nothing
// it did not make (see fs_unix.go): a directory or file that is a symbolic
// link, or owned by another user, is refused, never followed; a token file
// that others may read is refused; a directory that others may enter is
// tightened to 0700.
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
	rec, err := s.read(fileName(profile))
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

// maxFileSize bounds a token file: a token set is a few KiB.
const maxFileSize = 1 << 20

// readBounded reads a token file's content, refusing more than maxFileSize.
func readBounded(r io.Reader, path string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read token file %s: %w", path, err)
	}
	if len(b) > maxFileSize {
		return nil, corrupt(nil, "token file %s is larger than %d bytes: it is not a token file; log out to remove it", path, maxFileSize)
	}
	return b, nil
}

// read reads and decodes the file name of the store's directory (see
// fs_unix.go for the checks made on the way).
func (s *fileStore) read(name string) (*fileRecord, error) {
	b, err := s.readFile(name)
	if err != nil {
		return nil, err
	}
	var rec fileRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		path := filepath.Join(s.dir, name)
		return nil, corrupt(err, "token file %s is damaged (%v): log out to remove it, then log in again", path, err)
	}
	return &rec, nil
}

func (s *fileStore) Save(profile string, ts *TokenSet) error {
	b, err := json.MarshalIndent(fileRecord{Profile: profile, Tokens: ts}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode tokens: %w", err)
	}
	if err := s.writeFile(fileName(profile), b); err != nil {
		return fmt.Errorf("save tokens of %s: %w", profile, err)
	}
	return nil
}

func (s *fileStore) Delete(profile string) error {
	err := s.removeFile(fileName(profile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete tokens of %s: %w", profile, err)
	}
	return nil
}

// List names the profiles of every readable token file; files that cannot
// be read are skipped (Unreadable names them).
func (s *fileStore) List() ([]string, error) {
	ps, _, err := s.scan()
	return ps, err
}

// Unreadable lists the token files that List skipped, with why.
func (s *fileStore) Unreadable() ([]Unreadable, error) {
	_, bad, err := s.scan()
	return bad, err
}

// DeleteUnreadable removes a token file of the store's directory that List
// skipped. It refuses anything else.
func (s *fileStore) DeleteUnreadable(location string) error {
	name := filepath.Base(location)
	if filepath.Join(s.dir, name) != filepath.Clean(location) || !strings.HasSuffix(name, fileSuffix) {
		return fmt.Errorf("%s is not a token file of %s", location, s.dir)
	}
	if err := s.removeFile(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", location, err)
	}
	return nil
}

func (s *fileStore) scan() (ps []string, bad []Unreadable, err error) {
	names, err := s.listNames()
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list profiles: %w", err)
	}
	for _, name := range names {
		if !strings.HasSuffix(name, fileSuffix) {
			continue
		}
		rec, err := s.read(name)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			bad = append(bad, Unreadable{Location: filepath.Join(s.dir, name), Err: err})
		case rec.Profile != "":
			ps = append(ps, rec.Profile)
		}
	}
	return ps, bad, nil
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
