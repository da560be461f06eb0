package devbroker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// grantError is a refused refresh or code, with Keycloak's error_description.
type grantError string

func (e grantError) Error() string { return string(e) }

const (
	errStaleToken     grantError = "Stale token"
	errTokenInactive  grantError = "Token is not active"
	errSessionEnded   grantError = "Session not active"
	errInvalidRefresh grantError = "Invalid refresh token"
)

var errNotFound = errors.New("not found")

// store is the broker's in-memory op.Storage. One mutex guards everything:
// this is a development broker, and every operation is a few map lookups.
type store struct {
	issuer              string
	realm               string
	clientID            string
	audience            []string
	accessTTL           time.Duration
	refreshTTL          time.Duration
	introspectionSecret string
	now                 func() time.Time
	users               *directory
	key                 *signingKey

	mu        sync.Mutex
	requests  map[string]*grant        // auth request id → request
	codes     map[string]string        // authorization code → auth request id
	sessions  map[string]*session      // sid → session
	refresh   map[string]*refreshToken // refresh token → record
	used      map[string]time.Time     // rotated refresh token → when it would have expired
	access    map[string]*accessToken  // jti → record
	devices   map[string]*deviceAuth   // device code → authorization
	userCodes map[string]string        // normalized user code → device code
}

type session struct {
	id       string
	subject  string
	clientID string
	authTime time.Time
	ended    bool
	expires  time.Time // when its last token expires; purged after
}

type refreshToken struct {
	sid      string
	scopes   []string
	audience []string
	expires  time.Time
}

type accessToken struct {
	sid      string
	subject  string
	clientID string
	scopes   []string
	audience []string
	issued   time.Time
	expires  time.Time
	revoked  bool
}

type deviceAuth struct {
	clientID  string
	scopes    []string
	expires   time.Time
	subject   string // who logged in on the device page
	consentID string // ties the consent form to that login; single use
	authTime  time.Time
	sid       string
	done      bool
	denied    bool
}

func newStore(opts *Options, users *directory, key *signingKey) *store {
	return &store{
		issuer:              strings.TrimSuffix(opts.Issuer, "/"),
		realm:               opts.Realm,
		clientID:            opts.ClientID,
		audience:            slices.Clone(opts.Audience),
		accessTTL:           opts.AccessTTL,
		refreshTTL:          opts.RefreshTTL,
		introspectionSecret: opts.IntrospectionSecret,
		now:                 opts.Now,
		users:               users,
		key:                 key,
		requests:            map[string]*grant{},
		codes:               map[string]string{},
		sessions:            map[string]*session{},
		refresh:             map[string]*refreshToken{},
		used:                map[string]time.Time{},
		access:              map[string]*accessToken{},
		devices:             map[string]*deviceAuth{},
		userCodes:           map[string]string{},
	}
}

// newID returns a random UUID (version 4), the shape of Keycloak's ids.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// purge drops what has expired; called with mu held on every write.
func (s *store) purge(now time.Time) {
	for id, r := range s.requests {
		if now.Sub(r.Created) > authRequestTTL {
			s.deleteRequest(id)
		}
	}
	for t, r := range s.refresh {
		if now.After(r.expires) {
			delete(s.refresh, t)
		}
	}
	for t, exp := range s.used {
		if now.After(exp) {
			delete(s.used, t)
		}
	}
	for id, a := range s.access {
		if now.After(a.expires) {
			delete(s.access, id)
		}
	}
	for code, d := range s.devices {
		if now.After(d.expires) {
			s.deleteDevice(code)
		}
	}
	for id, ss := range s.sessions {
		if now.After(ss.expires) {
			delete(s.sessions, id)
		}
	}
}

func (s *store) deleteRequest(id string) {
	delete(s.requests, id)
	for code, rid := range s.codes {
		if rid == id {
			delete(s.codes, code)
		}
	}
}

func (s *store) deleteDevice(deviceCode string) {
	delete(s.devices, deviceCode)
	for uc, dc := range s.userCodes {
		if dc == deviceCode {
			delete(s.userCodes, uc)
		}
	}
}

func (s *store) newSession(subject, clientID string, authTime time.Time) *session {
	ss := &session{id: newID(), subject: subject, clientID: clientID, authTime: authTime,
		expires: authTime.Add(authRequestTTL + s.refreshTTL)}
	s.sessions[ss.id] = ss
	return ss
}

func (s *store) activeSession(sid string) (*session, bool) {
	ss, ok := s.sessions[sid]
	return ss, ok && !ss.ended
}

// endSession ends a session: its refresh tokens are then refused with
// "Session not active" and its access tokens are inactive in introspection.
func (s *store) endSession(sid string) {
	if ss, ok := s.sessions[sid]; ok {
		ss.ended = true
	}
}

// extendSession keeps a session until its newest token expires.
func (s *store) extendSession(sid string, until time.Time) {
	if ss, ok := s.sessions[sid]; ok && until.After(ss.expires) {
		ss.expires = until
	}
}

// Authorization requests and codes (op.AuthStorage).

func (s *store) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	now := s.now()
	g := &grant{
		ID:           newID(),
		ClientID:     req.ClientID,
		RedirectURI:  req.RedirectURI,
		State:        req.State,
		Nonce:        req.Nonce,
		ResponseType: req.ResponseType,
		ResponseMode: req.ResponseMode,
		Scopes:       grantScopes(req.Scopes),
		Audience:     slices.Clone(s.audience),
		Created:      now,
	}
	if req.CodeChallenge != "" {
		g.Challenge = &oidc.CodeChallenge{Challenge: req.CodeChallenge, Method: req.CodeChallengeMethod}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(now)
	s.requests[g.ID] = g
	c := *g
	return &c, nil
}

func (s *store) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.requests[id]
	if !ok || s.now().Sub(g.Created) > authRequestTTL {
		return nil, fmt.Errorf("auth request %w or expired; start the login again", errNotFound)
	}
	c := *g
	return &c, nil
}

func (s *store) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("code %w (codes are single use)", errNotFound)
	}
	return s.AuthRequestByID(ctx, id)
}

func (s *store) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.requests[id]; !ok {
		return fmt.Errorf("auth request %w", errNotFound)
	}
	s.codes[code] = id
	return nil
}

func (s *store) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteRequest(id)
	return nil
}

// loginRequest returns a copy of a pending auth request, for the login page.
func (s *store) loginRequest(id string) (*grant, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.requests[id]
	if !ok || g.done || s.now().Sub(g.Created) > authRequestTTL {
		return nil, false
	}
	c := *g
	return &c, true
}

// completeLogin marks the auth request as authenticated by a and opens a
// session, as a Keycloak login does.
func (s *store) completeLogin(id string, a *account) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.requests[id]
	if !ok || g.done {
		return fmt.Errorf("login request %w or already used; start the login again", errNotFound)
	}
	now := s.now()
	ss := s.newSession(a.subject, g.ClientID, now)
	g.Subject, g.AuthTime, g.SessionID, g.done = a.subject, now, ss.id, true
	return nil
}
