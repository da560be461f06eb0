package tokenstore

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/zalando/go-keyring"
)

// keyringAPI is the part of go-keyring the store uses; tests replace it.
type keyringAPI interface {
	Get(service, user string) (string, error)
	Set(service, user, password string) error
	Delete(service, user string) error
}

type systemKeyring struct{}

func (systemKeyring) Get(s, u string) (string, error) { return systemGet(s, u) }
func (systemKeyring) Set(s, u, p string) error        { return keyring.Set(s, u, p) }
func (systemKeyring) Delete(s, u string) error        { return keyring.Delete(s, u) }

// errKeyringMissing is what the keyring answers for an entry it does not hold.
var errKeyringMissing = keyring.ErrNotFound

// indexKey names the entry listing every profile. Profiles are URLs, so a
// name starting with '#' cannot collide with one.
const indexKey = "#profiles"

// keyringStore keeps each value as a header entry under its key plus chunks
// under "<key>#0" .. "<key>#N-1". The header records the chunk count, the
// length and a SHA-256 of the whole value, so a half-written value (a crash
// between chunk writes) is detected instead of being parsed as garbage.
type keyringStore struct {
	kr      keyringAPI
	service string
	timeout time.Duration
	chunk   int
}

type chunkHeader struct {
	Version int    `json:"v"`
	Chunks  int    `json:"chunks"`
	Length  int    `json:"len"`
	SHA256  string `json:"sha256"`
}

const headerVersion = 1

func newKeyringStore(o Options, kr keyringAPI) *keyringStore {
	return &keyringStore{kr: kr, service: o.Service, timeout: o.Timeout, chunk: o.ChunkSize}
}

func (s *keyringStore) Kind() string { return KindKeyring }

func (s *keyringStore) Location(string) string { return "keyring service " + s.service }

// probe checks that the keyring answers at all (and in time).
func (s *keyringStore) probe() error {
	_, err := s.get(indexKey)
	if errors.Is(err, errKeyringMissing) {
		return nil
	}
	return err
}

func (s *keyringStore) Load(profile string) (*TokenSet, error) {
	b, err := s.getValue(profile)
	if errors.Is(err, errKeyringMissing) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load tokens of %s: %w", profile, err)
	}
	var ts TokenSet
	if err := json.Unmarshal(b, &ts); err != nil {
		return nil, corrupt(err, "tokens of %s in the keyring are not readable (log out and in again): %v", profile, err)
	}
	return &ts, nil
}

func (s *keyringStore) Save(profile string, ts *TokenSet) error {
	b, err := json.Marshal(ts) // #nosec G117 -- storing tokens in the keyring is the point
	if err != nil {
		return fmt.Errorf("encode tokens: %w", err)
	}
	if err := s.putValue(profile, b); err != nil {
		return fmt.Errorf("save tokens of %s: %w", profile, err)
	}
	return s.updateIndex(func(ps []string) []string {
		if slices.Contains(ps, profile) {
			return ps
		}
		return append(ps, profile)
	})
}

func (s *keyringStore) Delete(profile string) error {
	if err := s.deleteValue(profile); err != nil {
		return fmt.Errorf("delete tokens of %s: %w", profile, err)
	}
	return s.updateIndex(func(ps []string) []string {
		return slices.DeleteFunc(ps, func(p string) bool { return p == profile })
	})
}

func (s *keyringStore) List() ([]string, error) {
	ps, err := s.readIndex()
	if err != nil {
		return nil, fmt.Errorf("list profiles: %w", err)
	}
	return ps, nil
}

func (s *keyringStore) readIndex() ([]string, error) {
	b, err := s.getValue(indexKey)
	if errors.Is(err, errKeyringMissing) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ps []string
	if err := json.Unmarshal(b, &ps); err != nil {
		return nil, corrupt(err, "keyring profile index is not readable: %v", err)
	}
	return ps, nil
}

// updateIndex rewrites the profile index. It is not atomic across processes;
// the index only serves List, and every token set stands on its own.
func (s *keyringStore) updateIndex(change func([]string) []string) error {
	ps, err := s.readIndex()
	if err != nil {
		return fmt.Errorf("update profile index: %w", err)
	}
	before := len(ps)
	ps = change(slices.Clone(ps))
	if len(ps) == before && before > 0 {
		return nil
	}
	if len(ps) == 0 {
		if err := s.deleteValue(indexKey); err != nil {
			return fmt.Errorf("update profile index: %w", err)
		}
		return nil
	}
	b, err := json.Marshal(ps)
	if err != nil {
		return fmt.Errorf("encode profile index: %w", err)
	}
	if err := s.putValue(indexKey, b); err != nil {
		return fmt.Errorf("update profile index: %w", err)
	}
	return nil
}

func chunkKey(key string, i int) string { return key + "#" + strconv.Itoa(i) }

// putValue writes the chunks, then the header, then deletes any chunk left
// from a longer earlier value.
func (s *keyringStore) putValue(key string, b []byte) error {
	sum := sha256.Sum256(b)
	n := 0
	for off := 0; off < len(b) || n == 0; off += s.chunk {
		end := min(off+s.chunk, len(b))
		if err := s.set(chunkKey(key, n), string(b[off:end])); err != nil {
			return err
		}
		n++
	}
	h, err := json.Marshal(chunkHeader{Version: headerVersion, Chunks: n, Length: len(b), SHA256: hex.EncodeToString(sum[:])})
	if err != nil {
		return err
	}
	if err := s.set(key, string(h)); err != nil {
		return err
	}
	return s.deleteChunksFrom(key, n)
}

// tornError reports a value whose header and chunks disagree. It is what a
// reader sees while another process rewrites the value, so getValue reads
// again before calling it damage.
type tornError string

func (e tornError) Error() string { return string(e) }

// maxValueLen bounds a value's length as its header states it.
const maxValueLen = 1 << 20

// Bounds of getValue's re-reads of a torn value: about 2 s in all. A
// writer's header and chunks are several D-Bus calls, which on a loaded
// machine can take longer than a few hundred milliseconds; only a value
// still torn after that is called damaged. An intact value is read once.
const (
	tornRetries = 20
	tornDelay   = 100 * time.Millisecond
)

// getValue reads a value written by putValue; errKeyringMissing when absent.
func (s *keyringStore) getValue(key string) ([]byte, error) {
	for range tornRetries - 1 {
		b, err := s.readValue(key)
		var torn tornError
		if !errors.As(err, &torn) {
			return b, err
		}
		time.Sleep(tornDelay)
	}
	b, err := s.readValue(key)
	var torn tornError
	if errors.As(err, &torn) {
		return nil, corrupt(err, "%s", err.Error())
	}
	return b, err
}

// readAhead is how many chunks readValue reads together with the header,
// before knowing how many there are: a token set takes 2 or 3 of 2000 bytes.
const readAhead = 3

// readValue reads a value's header and chunks. Each keyring read is a few
// D-Bus round trips and this is on the path of every CLI call (issue 7), so
// the reads run concurrently: the header with the first readAhead chunks,
// then any further chunks the header names.
func (s *keyringStore) readValue(key string) ([]byte, error) {
	first := s.getAll(key, 0, readAhead, true)
	raw, err := first[0].v, first[0].err
	if err != nil {
		return nil, err
	}
	var h chunkHeader
	// The header's bounds are checked before more chunks are read (all at
	// once): a damaged one must not start millions of reads.
	if err := json.Unmarshal([]byte(raw), &h); err != nil || h.Version != headerVersion || h.Chunks < 1 ||
		h.Length < 0 || h.Length > maxValueLen || h.Chunks > max(1, h.Length) {
		return nil, corrupt(nil, "keyring entry %q has an unknown format (log out and in again to rewrite it)", key)
	}
	chunks := first[1:min(1+h.Chunks, len(first))]
	if h.Chunks > readAhead {
		chunks = append(chunks, s.getAll(key, readAhead, h.Chunks, false)...)
	}
	b := make([]byte, 0, h.Length)
	for i, c := range chunks {
		if errors.Is(c.err, errKeyringMissing) {
			return nil, tornError(fmt.Sprintf("keyring entry %q lacks chunk %d of %d (log in again to rewrite it)", key, i, h.Chunks))
		}
		if c.err != nil {
			return nil, c.err
		}
		b = append(b, c.v...)
	}
	sum := sha256.Sum256(b)
	if len(b) != h.Length || hex.EncodeToString(sum[:]) != h.SHA256 {
		return nil, tornError(fmt.Sprintf("keyring entry %q is damaged: its chunks do not match its header (log in again to rewrite it)", key))
	}
	return b, nil
}

type readResult struct {
	v   string
	err error
}

// getAll reads chunks from..to-1 of key concurrently, preceded by key's
// header itself when withHeader.
func (s *keyringStore) getAll(key string, from, to int, withHeader bool) []readResult {
	var users []string
	if withHeader {
		users = append(users, key)
	}
	for i := from; i < to; i++ {
		users = append(users, chunkKey(key, i))
	}
	out := make([]readResult, len(users))
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() { out[i].v, out[i].err = s.get(u) })
	}
	wg.Wait()
	return out
}

// deleteValue removes the header and every chunk; a missing value is fine.
func (s *keyringStore) deleteValue(key string) error {
	if err := s.del(key); err != nil && !errors.Is(err, errKeyringMissing) {
		return err
	}
	return s.deleteChunksFrom(key, 0)
}

// deleteChunksFrom deletes chunks first, first+1, ... up to the first one
// that does not exist. Chunks are always written contiguously from 0, so
// this leaves none behind, whatever the header said.
func (s *keyringStore) deleteChunksFrom(key string, first int) error {
	for i := first; ; i++ {
		err := s.del(chunkKey(key, i))
		if errors.Is(err, errKeyringMissing) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (s *keyringStore) get(user string) (string, error) {
	var v string
	err := s.call(func() (err error) { v, err = s.kr.Get(s.service, user); return err })
	return v, err
}

func (s *keyringStore) set(user, value string) error {
	return s.call(func() error { return s.kr.Set(s.service, user, value) })
}

func (s *keyringStore) del(user string) error {
	return s.call(func() error { return s.kr.Delete(s.service, user) })
}

// ErrKeyringUnavailable matches (errors.Is) every error that means the OS
// keyring cannot be used right now: no Secret Service, locked, not answering.
var ErrKeyringUnavailable = errors.New("the OS keyring is not available")

type unavailableError struct {
	msg string
	err error
}

func (e *unavailableError) Error() string        { return e.msg }
func (e *unavailableError) Unwrap() error        { return e.err }
func (e *unavailableError) Is(target error) bool { return target == ErrKeyringUnavailable }

// call runs fn with the store's timeout. go-keyring cannot be cancelled, so
// a call that times out is left running in its goroutine; its result is
// dropped.
func (s *keyringStore) call(fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, errKeyringMissing) {
			return err
		}
		return &unavailableError{
			msg: fmt.Sprintf("the OS keyring is not available (%v): start or unlock it, or use --token-store file", err),
			err: err,
		}
	case <-timer.C:
		return &unavailableError{msg: fmt.Sprintf(
			"the OS keyring did not answer within %s (locked or no Secret Service?): unlock it, or use --token-store file", s.timeout)}
	}
}
