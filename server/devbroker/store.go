package devbroker

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
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

// --- op.AuthStorage: authorization requests and codes ---

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

// --- tokens ---

func (s *store) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := req.(*grant)
	if !ok {
		return "", time.Time{}, fmt.Errorf("unsupported token request %T", req)
	}
	jti, exp := s.newAccessToken(g)
	s.extendSession(g.SessionID, exp)
	return jti, exp, nil
}

func (s *store) newAccessToken(g *grant) (string, time.Time) {
	now := s.now()
	jti := newID()
	s.access[jti] = &accessToken{
		sid: g.SessionID, subject: g.Subject, clientID: g.ClientID,
		scopes: slices.Clone(g.Scopes), audience: slices.Clone(g.Audience),
		issued: now, expires: now.Add(s.accessTTL),
	}
	return jti, now.Add(s.accessTTL)
}

// CreateAccessAndRefreshTokens issues an access token and a refresh token.
// With currentRefreshToken set it rotates: the old token is retired and a
// later use of it is refused as a "Stale token", like a Keycloak realm with
// "Revoke Refresh Token" on.
func (s *store) CreateAccessAndRefreshTokens(_ context.Context, req op.TokenRequest, currentRefreshToken string) (string, string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.purge(now)
	g, ok := req.(*grant)
	if !ok {
		return "", "", time.Time{}, fmt.Errorf("unsupported token request %T", req)
	}
	if currentRefreshToken != "" {
		// Checked again under the lock: two refreshes racing with one token
		// must not both succeed.
		if _, err := s.refreshRecord(currentRefreshToken, now); err != nil {
			return "", "", time.Time{}, err
		}
		delete(s.refresh, currentRefreshToken)
		s.used[currentRefreshToken] = now.Add(s.refreshTTL)
	}
	if _, ok := s.activeSession(g.SessionID); !ok {
		return "", "", time.Time{}, errSessionEnded
	}
	token := rand.Text()
	s.refresh[token] = &refreshToken{
		sid: g.SessionID, scopes: slices.Clone(g.Scopes), audience: slices.Clone(g.Audience),
		expires: now.Add(s.refreshTTL),
	}
	jti, exp := s.newAccessToken(g)
	s.extendSession(g.SessionID, now.Add(max(s.refreshTTL, s.accessTTL)))
	return jti, token, exp, nil
}

// refreshRecord finds an active refresh token; mu must be held.
func (s *store) refreshRecord(token string, now time.Time) (*refreshToken, error) {
	r, ok := s.refresh[token]
	switch {
	case !ok && !s.used[token].IsZero():
		return nil, errStaleToken
	case !ok:
		return nil, errInvalidRefresh
	case now.After(r.expires):
		return nil, errTokenInactive
	}
	if _, ok := s.activeSession(r.sid); !ok {
		return nil, errSessionEnded
	}
	return r, nil
}

func (s *store) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.refreshRecord(token, s.now())
	if err != nil {
		return nil, err
	}
	ss := s.sessions[r.sid]
	return &grant{
		ClientID:     ss.clientID,
		ResponseType: oidc.ResponseTypeCode,
		Scopes:       slices.Clone(r.scopes),
		Audience:     slices.Clone(r.audience),
		Subject:      ss.subject,
		SessionID:    ss.id,
		AuthTime:     ss.authTime,
	}, nil
}

// refreshInfo reports the session and lifetime of an issued refresh token,
// for the Keycloak fields of the token response.
func (s *store) refreshInfo(token string) (sid string, expiresIn time.Duration, scopes []string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refresh[token]
	if !ok {
		return "", 0, nil, false
	}
	return r.sid, r.expires.Sub(s.now()), slices.Clone(r.scopes), true
}

// endSessionByRefreshToken is Keycloak's logout with a refresh token.
func (s *store) endSessionByRefreshToken(clientID, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.refreshRecord(token, s.now())
	if err != nil {
		return err
	}
	if s.sessions[r.sid].clientID != clientID {
		return errors.New("refresh token was issued to another client")
	}
	s.endSession(r.sid)
	return nil
}

func (s *store) TerminateSession(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ss := range s.sessions {
		if ss.subject == userID && ss.clientID == clientID {
			s.endSession(id)
		}
	}
	return nil
}

// TerminateSessionFromRequest ends the session named by the id_token_hint's
// sid, or else every session of the hinted user with the client.
func (s *store) TerminateSessionFromRequest(ctx context.Context, req *op.EndSessionRequest) (string, error) {
	if req.IDTokenHintClaims != nil && req.IDTokenHintClaims.SessionID != "" {
		s.mu.Lock()
		s.endSession(req.IDTokenHintClaims.SessionID)
		s.mu.Unlock()
		return req.RedirectURI, nil
	}
	if req.UserID != "" {
		return req.RedirectURI, s.TerminateSession(ctx, req.UserID, req.ClientID)
	}
	return req.RedirectURI, nil
}

// RevokeToken revokes a refresh token (ending its session, as Keycloak's
// revocation endpoint does) or an access token (by its jti). Unknown tokens
// are not an error (RFC 7009 §2.2).
func (s *store) RevokeToken(_ context.Context, tokenOrID, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.refresh[tokenOrID]; ok {
		if ss, ok := s.sessions[r.sid]; ok {
			if ss.clientID != clientID {
				return oidc.ErrInvalidClient().WithDescription("the token was issued to another client")
			}
			s.endSession(r.sid)
		}
		return nil
	}
	if a, ok := s.access[tokenOrID]; ok {
		if a.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("the token was issued to another client")
		}
		a.revoked = true
	}
	return nil
}

func (s *store) GetRefreshTokenInfo(_ context.Context, _ string, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refresh[token]
	if !ok {
		return "", "", op.ErrInvalidRefreshToken
	}
	ss, ok := s.sessions[r.sid]
	if !ok {
		return "", "", op.ErrInvalidRefreshToken
	}
	return ss.subject, token, nil
}

// activeAccess finds an access token that is neither expired, revoked nor of
// an ended session.
func (s *store) activeAccess(jti string) (*accessToken, bool) {
	a, ok := s.access[jti]
	if !ok || a.revoked || s.now().After(a.expires) {
		return nil, false
	}
	if _, ok := s.activeSession(a.sid); !ok {
		return nil, false
	}
	return a, true
}

// --- keys ---

func (s *store) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }

func (s *store) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *store) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{s.key}}, nil
}

// --- op.OPStorage: clients, claims ---

func (s *store) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	switch id {
	case s.clientID:
		return &publicClient{id: id, loginURL: s.issuer + "/login-actions/authenticate", idTTL: s.accessTTL}, nil
	case DefaultIntrospectionClientID:
		return &introspectionClient{}, nil
	}
	return nil, fmt.Errorf("client %q %w: the development broker knows only %q", id, errNotFound, s.clientID)
}

func (s *store) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	if id != DefaultIntrospectionClientID ||
		subtle.ConstantTimeCompare([]byte(secret), []byte(s.introspectionSecret)) != 1 {
		return errors.New("wrong client id or secret")
	}
	return nil
}

// SetUserinfoFromScopes is deprecated by the op library; see SetUserinfoFromRequest.
func (s *store) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token's identity claims.
func (s *store) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	a, ok := s.users.bySubject(req.GetSubject())
	if !ok {
		return fmt.Errorf("user %w", errNotFound)
	}
	setUserinfo(info, a, scopes)
	info.AppendClaims("typ", "ID")
	if g, ok := req.(*grant); ok && g.SessionID != "" {
		info.AppendClaims("sid", g.SessionID)
		info.AppendClaims("session_state", g.SessionID)
	}
	return nil
}

func (s *store) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, jti, subject, _ string) error {
	s.mu.Lock()
	at, ok := s.activeAccess(jti)
	s.mu.Unlock()
	if !ok || at.subject != subject {
		return errors.New("token is not active")
	}
	a, ok := s.users.bySubject(subject)
	if !ok {
		return fmt.Errorf("user %w", errNotFound)
	}
	setUserinfo(info, a, at.scopes)
	return nil
}

func (s *store) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, jti, subject, _ string) error {
	s.mu.Lock()
	at, ok := s.activeAccess(jti)
	var at2 accessToken
	if ok {
		at2 = *at
	}
	s.mu.Unlock()
	if !ok || at2.subject != subject {
		return errors.New("token is not active")
	}
	a, ok := s.users.bySubject(subject)
	if !ok {
		return fmt.Errorf("user %w", errNotFound)
	}
	info := new(oidc.UserInfo)
	setUserinfo(info, a, []string{oidc.ScopeProfile, oidc.ScopeEmail})
	resp.SetUserInfo(info)
	resp.Issuer = s.issuer
	resp.ClientID = at2.clientID
	resp.TokenType = oidc.BearerToken
	resp.Scope = at2.scopes
	resp.Audience = at2.audience
	resp.JWTID = jti
	resp.IssuedAt = oidc.FromTime(at2.issued)
	resp.Expiration = oidc.FromTime(at2.expires)
	if resp.Claims == nil {
		resp.Claims = map[string]any{}
	}
	for k, v := range s.roleClaims(a, at2.clientID) {
		resp.Claims[k] = v
	}
	resp.Claims["sid"] = at2.sid
	return nil
}

func (s *store) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// GetPrivateClaimsFromRequest adds Keycloak's claims to access tokens.
func (s *store) GetPrivateClaimsFromRequest(_ context.Context, req op.TokenRequest, _ []string) (map[string]any, error) {
	g, ok := req.(*grant)
	if !ok {
		return nil, fmt.Errorf("unsupported token request %T", req)
	}
	a, ok := s.users.bySubject(g.Subject)
	if !ok {
		return nil, fmt.Errorf("user %w", errNotFound)
	}
	claims := map[string]any{
		"typ":                "Bearer",
		"azp":                g.ClientID,
		"acr":                "1",
		"auth_time":          g.AuthTime.Unix(),
		"sid":                g.SessionID,
		"session_state":      g.SessionID,
		"scope":              strings.Join(g.Scopes, " "),
		"preferred_username": a.Name,
		"name":               a.Name,
		"email":              a.Email,
		"email_verified":     true,
	}
	if g.Nonce != "" {
		claims["nonce"] = g.Nonce
	}
	for k, v := range s.roleClaims(a, g.ClientID) {
		claims[k] = v
	}
	return claims, nil
}

// roleClaims are Keycloak's role claims: the user's roles as realm roles and
// as client roles of clientID, plus the realm's default roles.
func (s *store) roleClaims(a *account, clientID string) map[string]any {
	realmRoles := append(slices.Clone(a.Roles), "default-roles-"+s.realm, "offline_access", "uma_authorization")
	resource := map[string]any{
		"account": map[string]any{"roles": []string{"manage-account", "manage-account-links", "view-profile"}},
	}
	if len(a.Roles) > 0 {
		resource[clientID] = map[string]any{"roles": slices.Clone(a.Roles)}
	}
	return map[string]any{
		"realm_access":    map[string]any{"roles": realmRoles},
		"resource_access": resource,
	}
}

func setUserinfo(info *oidc.UserInfo, a *account, scopes []string) {
	info.Subject = a.subject
	if slices.Contains(scopes, oidc.ScopeProfile) {
		info.PreferredUsername = a.Name
		info.Name = a.Name
	}
	if slices.Contains(scopes, oidc.ScopeEmail) {
		info.Email = a.Email
		info.EmailVerified = true
	}
}

func (s *store) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("the development broker does not support JWT client authentication")
}

func (s *store) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("the development broker does not support the JWT profile grant")
}

func (s *store) Health(context.Context) error { return nil }

// --- op.DeviceAuthorizationStorage and the device pages ---

// normalizeUserCode accepts a user code typed in any case, with or without
// the dash and spaces.
func normalizeUserCode(c string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, c)
}

func (s *store) StoreDeviceAuthorization(_ context.Context, clientID, deviceCode, userCode string, expires time.Time, scopes []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(s.now())
	uc := normalizeUserCode(userCode)
	if _, dup := s.userCodes[uc]; dup {
		return op.ErrDuplicateUserCode
	}
	s.devices[deviceCode] = &deviceAuth{clientID: clientID, scopes: grantScopes(scopes), expires: expires}
	s.userCodes[uc] = deviceCode
	return nil
}

func (s *store) GetDeviceAuthorizatonState(_ context.Context, clientID, deviceCode string) (*op.DeviceAuthorizationState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[deviceCode]
	if !ok || d.clientID != clientID {
		return nil, fmt.Errorf("device code %w", errNotFound)
	}
	return &op.DeviceAuthorizationState{
		ClientID: d.clientID, Scopes: slices.Clone(d.scopes), Expires: d.expires,
		Done: d.done, Denied: d.denied, Subject: d.subject, AuthTime: d.authTime,
	}, nil
}

// pendingDevice finds a device authorization waiting for its user.
func (s *store) pendingDevice(userCode string) (clientID string, scopes []string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[s.userCodes[normalizeUserCode(userCode)]]
	if !ok || d.done || d.denied || s.now().After(d.expires) {
		return "", nil, false
	}
	return d.clientID, slices.Clone(d.scopes), true
}

// deviceLogin records who logged in for the user code, and returns the
// single-use id the consent form must carry.
func (s *store) deviceLogin(userCode string, a *account) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[s.userCodes[normalizeUserCode(userCode)]]
	if !ok || d.done || d.denied {
		return "", errors.New("unknown or used code")
	}
	d.subject, d.authTime, d.consentID = a.subject, s.now(), rand.Text()
	return d.consentID, nil
}

// deviceDecide approves or denies the device authorization of userCode.
func (s *store) deviceDecide(userCode, consentID string, approve bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[s.userCodes[normalizeUserCode(userCode)]]
	if !ok || d.done || d.denied || d.consentID == "" ||
		subtle.ConstantTimeCompare([]byte(consentID), []byte(d.consentID)) != 1 {
		return errors.New("unknown, expired or already used code")
	}
	d.consentID = ""
	if !approve {
		d.denied = true
		return nil
	}
	d.sid = s.newSession(d.subject, d.clientID, d.authTime).id
	d.done = true
	return nil
}

// takeDeviceGrant consumes an approved device authorization.
func (s *store) takeDeviceGrant(clientID, deviceCode string) (*grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[deviceCode]
	if !ok || !d.done || d.clientID != clientID {
		return nil, oidc.ErrInvalidGrant().WithDescription("device code already used or unknown")
	}
	s.deleteDevice(deviceCode)
	return &grant{
		ClientID:     d.clientID,
		ResponseType: oidc.ResponseTypeCode,
		Scopes:       d.scopes,
		Audience:     slices.Clone(s.audience),
		Subject:      d.subject,
		SessionID:    d.sid,
		AuthTime:     d.authTime,
	}, nil
}
