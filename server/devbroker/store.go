package devbroker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
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
	refreshKey          *refreshKey
	client              *clientConfig

	mu        sync.Mutex
	requests  map[string]*grant        // auth request id → request
	codes     map[string]*codeRecord   // authorization code → its request and claim
	sessions  map[string]*session      // sid → session
	browsers  map[string]string        // browser cookie secret → sid
	refresh   map[string]*refreshToken // refresh token jti → record
	used      map[string]*refreshToken // rotated refresh token jti → its record (purged when it would have expired)
	access    map[string]*accessToken  // jti → record
	devices   map[string]*deviceAuth   // device code → authorization
	userCodes map[string]string        // normalized user code → device code
}

// session is Keycloak's user session: opened by a login, shared by the
// browser (SSO cookie) and every token issued in it.
type session struct {
	id       string
	subject  string
	clientID string // the client that opened it
	authTime time.Time
	browser  string // secret of the browser's identity cookie; "" if none
	ended    bool
	expires  time.Time // when its last token expires; purged after
}

// codeRecord is an issued authorization code. claimed is set by the first
// token request that presents it, so a code redeemed by concurrent requests
// yields tokens once.
type codeRecord struct {
	requestID string
	claimed   bool
}

type refreshToken struct {
	sid      string
	clientID string
	subject  string
	scopes   []string
	audience []string
	nonce    string
	offline  bool
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
		codes:               map[string]*codeRecord{},
		sessions:            map[string]*session{},
		browsers:            map[string]string{},
		refresh:             map[string]*refreshToken{},
		used:                map[string]*refreshToken{},
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
	for t, r := range s.used {
		if now.After(r.expires) {
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
			delete(s.browsers, ss.browser)
		}
	}
}

func (s *store) deleteRequest(id string) {
	delete(s.requests, id)
	for code, c := range s.codes {
		if c.requestID == id {
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
		delete(s.browsers, ss.browser)
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
		Prompt:       slices.Clone(req.Prompt),
		Created:      now,
	}
	if req.MaxAge != nil {
		maxAge := time.Duration(min(*req.MaxAge, uint(math.MaxInt32))) * time.Second
		g.MaxAge = &maxAge
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

// claimedCodeKey marks a context whose token request claimed a code.
type claimedCodeKey struct{}

// claimCode claims code for one token request: the first caller gets a
// context under which AuthRequestByCode finds the code's request; every
// later or concurrent caller gets false. A claimed code stays used even if
// the exchange then fails (a wrong verifier burns it), as Keycloak does.
func (s *store) claimCode(ctx context.Context, code string) (context.Context, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[code]
	if !ok || c.claimed {
		return ctx, false
	}
	c.claimed = true
	return context.WithValue(ctx, claimedCodeKey{}, code), true
}

// AuthRequestByCode finds the request of a code claimed by this request's
// context (see claimCode).
func (s *store) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	c, ok := s.codes[code]
	s.mu.Unlock()
	if claimed, _ := ctx.Value(claimedCodeKey{}).(string); !ok || claimed != code {
		return nil, oidc.ErrInvalidGrant().WithDescription("Code not valid")
	}
	return s.AuthRequestByID(ctx, c.requestID)
}

func (s *store) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.requests[id]; !ok {
		return fmt.Errorf("auth request %w", errNotFound)
	}
	s.codes[code] = &codeRecord{requestID: id}
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
// session with a browser identity, as a Keycloak login does. It returns the
// session id and the secret of the browser's identity cookie.
func (s *store) completeLogin(id string, a *account) (sid, browser string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.requests[id]
	if !ok || g.done {
		return "", "", fmt.Errorf("login request %w or already used; start the login again", errNotFound)
	}
	now := s.now()
	ss := s.newSession(a.subject, g.ClientID, now)
	ss.browser = rand.Text()
	s.browsers[ss.browser] = ss.id
	g.Subject, g.AuthTime, g.SessionID, g.done = a.subject, now, ss.id, true
	return ss.id, ss.browser, nil
}

// browserSession finds the active session of a browser identity cookie.
func (s *store) browserSession(secret string) (sid, subject string, authTime time.Time, ok bool) {
	if secret == "" {
		return "", "", time.Time{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.activeSession(s.browsers[secret])
	if !ok || ss.browser != secret {
		return "", "", time.Time{}, false
	}
	return ss.id, ss.subject, ss.authTime, true
}

// completeLoginInSession authenticates the auth request with an existing
// session (single sign-on: no password asked).
func (s *store) completeLoginInSession(id, sid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.requests[id]
	if !ok || g.done {
		return fmt.Errorf("login request %w or already used; start the login again", errNotFound)
	}
	ss, ok := s.activeSession(sid)
	if !ok {
		return errSessionEnded
	}
	g.Subject, g.AuthTime, g.SessionID, g.done = ss.subject, ss.authTime, ss.id, true
	return nil
}

// abandonRequest drops an auth request answered with an error.
func (s *store) abandonRequest(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteRequest(id)
}

// endSessions ends the sessions named (empty ids are skipped).
func (s *store) endSessions(sids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sid := range sids {
		if sid != "" {
			s.endSession(sid)
		}
	}
}

// passwordSession opens a session (without a browser) for a password grant
// and returns its token request.
func (s *store) passwordSession(a *account, clientID string, scopes []string) *grant {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.purge(now)
	ss := s.newSession(a.subject, clientID, now)
	return &grant{
		ClientID:     clientID,
		ResponseType: oidc.ResponseTypeCode,
		Scopes:       grantScopes(scopes),
		Audience:     slices.Clone(s.audience),
		Subject:      a.subject,
		SessionID:    ss.id,
		AuthTime:     now,
	}
}
