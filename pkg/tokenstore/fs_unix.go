//go:build unix

package tokenstore

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The file store's system calls, as ssh treats ~/.ssh: every file is
// reached from a descriptor of the directory (openat), so the directory
// cannot be swapped between the check and the use; no final path component
// is followed if it is a symbolic link (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW);
// and what is found is checked on the descriptor (fstat), not by name.

// openDir opens the token directory (creating it 0700 first if create):
// a symbolic link or another user's directory is refused; a mode that lets
// others in is tightened to 0700.
func (s *fileStore) openDir(create bool) (int, error) {
	if create {
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return -1, fmt.Errorf("create token directory: %w", err)
		}
	}
	fd, err := unix.Open(s.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		return -1, unsafeErr("token directory %s is a symbolic link or not a directory: pbench-auth never follows links to tokens; "+
			"make it a directory of your own, or set $XDG_STATE_HOME", s.dir)
	case err != nil:
		return -1, &os.PathError{Op: "open", Path: s.dir, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd)
		return -1, &os.PathError{Op: "stat", Path: s.dir, Err: err}
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		_ = unix.Close(fd)
		return -1, unsafeErr("token directory %s belongs to user id %d, not to you (%d): pbench-auth keeps tokens only in a directory of your own; "+
			"remove it, or set $XDG_STATE_HOME", s.dir, st.Uid, uid)
	}
	if perm := st.Mode & 0o777; perm&0o077 != 0 {
		if err := unix.Fchmod(fd, 0o700); err != nil {
			_ = unix.Close(fd)
			return -1, unsafeErr("token directory %s has mode %04o and cannot be tightened to 0700 (%v): run `chmod 700 %s`", s.dir, perm, err, s.dir)
		}
	}
	return fd, nil
}

// checkFile refuses what the file store never reads nor deletes: something
// other than a regular file, or a file owned by another user.
func (s *fileStore) checkFile(name string, st *unix.Stat_t) error {
	path := filepath.Join(s.dir, name)
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return unsafeErr("token file %s is a symbolic link: pbench-auth never follows links to tokens; remove the link (and check where it points for tokens), then log in again", path)
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return unsafeErr("token file %s is not a regular file: remove it, then log in again", path)
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return unsafeErr("token file %s belongs to user id %d, not to you (%d): it may have been planted to log you in as someone else; "+
			"it was not used: remove it, then log in again", path, st.Uid, uid)
	}
	return nil
}

func (s *fileStore) readFile(name string) ([]byte, error) {
	dfd, err := s.openDir(false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = unix.Close(dfd) }()
	path := filepath.Join(s.dir, name)
	// O_NONBLOCK: a planted FIFO must not hang the reader.
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, s.checkFile(name, &unix.Stat_t{Mode: unix.S_IFLNK})
	case err != nil:
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path) // #nosec G115 -- a descriptor
	defer func() { _ = f.Close() }()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if err := s.checkFile(name, &st); err != nil {
		return nil, err
	}
	if perm := st.Mode & 0o777; perm&0o077 != 0 {
		return nil, unsafeErr("token file %s has mode %04o, so other users may read your tokens: run `chmod 600 %s` "+
			"(and log in again if they could have been copied)", path, perm, path)
	}
	return readBounded(f, path)
}

// writeFile replaces name atomically: a new 0600 file (O_EXCL, so never an
// existing file or link) renamed over it. rename replaces a link itself,
// never its target.
func (s *fileStore) writeFile(name string, b []byte) error {
	dfd, err := s.openDir(true)
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(dfd) }()
	tmp := ".tmp-" + rand.Text()
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "create", Path: filepath.Join(s.dir, tmp), Err: err}
	}
	defer func() { _ = unix.Unlinkat(dfd, tmp, 0) }()       // a no-op after the rename
	f := os.NewFile(uintptr(fd), filepath.Join(s.dir, tmp)) // #nosec G115 -- a descriptor
	cherr := f.Chmod(0o600)                                 // whatever the umask
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(cherr, werr, serr, cerr); err != nil {
		return err
	}
	if err := unix.Renameat(dfd, tmp, dfd, name); err != nil {
		return &os.LinkError{Op: "rename", Old: tmp, New: filepath.Join(s.dir, name), Err: err}
	}
	return nil
}

// removeFile deletes name, unless it is a link or another user's file.
func (s *fileStore) removeFile(name string) error {
	dfd, err := s.openDir(false)
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(dfd) }()
	path := filepath.Join(s.dir, name)
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if err := s.checkFile(name, &st); err != nil {
		return err
	}
	if err := unix.Unlinkat(dfd, name, 0); err != nil {
		return &os.PathError{Op: "remove", Path: path, Err: err}
	}
	return nil
}

// listNames lists the directory's entries.
func (s *fileStore) listNames() ([]string, error) {
	dfd, err := s.openDir(false)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dfd), s.dir) // #nosec G115 -- a descriptor
	defer func() { _ = f.Close() }()
	return f.Readdirnames(-1)
}
