//go:build !unix

package tokenstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Outside Unix the file store relies on the user profile's ACLs: it creates
// the directory, refuses links, and replaces files atomically.

func (s *fileStore) readFile(name string) ([]byte, error) {
	path := filepath.Join(s.dir, name)
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, unsafeErr("token file %s is not a regular file (a link?): remove it, then log in again", path)
	}
	f, err := os.Open(path) // #nosec G304 -- our own directory and a hashed name
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return readBounded(f, path)
}

func (s *fileStore) writeFile(name string, b []byte) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("create token directory: %w", err)
	}
	tmp, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	_, werr := tmp.Write(b)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(s.dir, name))
}

func (s *fileStore) removeFile(name string) error {
	path := filepath.Join(s.dir, name)
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return unsafeErr("token file %s is not a regular file (a link?): not deleted; remove it yourself", path)
	}
	return os.Remove(path)
}

func (s *fileStore) listNames() ([]string, error) {
	f, err := os.Open(s.dir)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return f.Readdirnames(-1)
}
