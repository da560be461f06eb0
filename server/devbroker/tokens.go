package devbroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// This file: access and refresh tokens (issue, rotate, revoke, end
// sessions) and the signing keys, for op.AuthStorage.

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

// CreateAccessAndRefreshTokens issues an access token and a refresh token
// (a signed JWT, as Keycloak's: typ "Refresh", or "Offline" when
// offline_access was granted). With currentRefreshToken set it rotates: the
// old token is retired and a later use of it is refused as a "Stale token",
// like a Keycloak realm with "Revoke Refresh Token" on.
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
		jti, r, err := s.refreshRecord(currentRefreshToken, now)
		if err != nil {
			return "", "", time.Time{}, err
		}
		delete(s.refresh, jti)
		s.used[jti] = r
	}
	ss, ok := s.activeSession(g.SessionID)
	if !ok {
		return "", "", time.Time{}, errSessionEnded
	}
	r := &refreshToken{
		sid: g.SessionID, clientID: g.ClientID, subject: ss.subject,
		scopes: slices.Clone(g.Scopes), audience: slices.Clone(g.Audience), nonce: g.Nonce,
		offline: slices.Contains(g.Scopes, oidc.ScopeOfflineAccess),
		expires: now.Add(s.refreshTTL),
	}
	claims := &refreshClaims{
		IssuedAt: now.Unix(), JTI: newID(), Issuer: s.issuer, Audience: s.issuer, Subject: ss.subject,
		Type: "Refresh", AZP: g.ClientID, Nonce: g.Nonce, SessionState: g.SessionID, SID: g.SessionID,
		Scope: strings.Join(g.Scopes, " "),
	}
	if r.offline {
		claims.Type, r.expires = "Offline", now.Add(offlineTTL)
	} else {
		claims.Expiry = r.expires.Unix()
	}
	token, err := s.refreshKey.sign(claims)
	if err != nil {
		return "", "", time.Time{}, err
	}
	s.refresh[claims.JTI] = r
	jti, exp := s.newAccessToken(g)
	s.extendSession(g.SessionID, r.expires)
	return jti, token, exp, nil
}

// refreshRecord finds an active refresh token and its jti; mu must be held.
func (s *store) refreshRecord(token string, now time.Time) (string, *refreshToken, error) {
	jti, ok := s.refreshKey.jti(token)
	if !ok {
		return "", nil, errInvalidRefresh
	}
	r, ok := s.refresh[jti]
	if stale, used := s.used[jti]; !ok && used {
		// A rotated token: its session's end is the better news.
		if _, active := s.activeSession(stale.sid); !active {
			return "", nil, errSessionEnded
		}
		return "", nil, errStaleToken
	}
	switch {
	case !ok:
		return "", nil, errInvalidRefresh
	case now.After(r.expires):
		return "", nil, errTokenInactive
	}
	if _, ok := s.activeSession(r.sid); !ok {
		return "", nil, errSessionEnded
	}
	return jti, r, nil
}

func (s *store) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, r, err := s.refreshRecord(token, s.now())
	if err != nil {
		return nil, err
	}
	ss := s.sessions[r.sid]
	return &grant{
		ClientID:     r.clientID,
		ResponseType: oidc.ResponseTypeCode,
		Scopes:       slices.Clone(r.scopes),
		Audience:     slices.Clone(r.audience),
		Nonce:        r.nonce,
		Subject:      ss.subject,
		SessionID:    ss.id,
		AuthTime:     ss.authTime,
	}, nil
}

// refreshInfo reports the session and lifetime of an issued refresh token,
// for the Keycloak fields of the token response; expiresIn is 0 for an
// offline token, as Keycloak's refresh_expires_in.
func (s *store) refreshInfo(token string) (sid string, expiresIn time.Duration, scopes []string, ok bool) {
	jti, ok := s.refreshKey.jti(token)
	if !ok {
		return "", 0, nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refresh[jti]
	if !ok {
		return "", 0, nil, false
	}
	if r.offline {
		return r.sid, 0, slices.Clone(r.scopes), true
	}
	return r.sid, r.expires.Sub(s.now()), slices.Clone(r.scopes), true
}

// endSessionByRefreshToken is Keycloak's logout with a refresh token.
func (s *store) endSessionByRefreshToken(clientID, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, r, err := s.refreshRecord(token, s.now())
	if err != nil {
		return err
	}
	if r.clientID != clientID {
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
	if jti, ok := s.refreshKey.jti(tokenOrID); ok {
		if r, ok := s.refresh[jti]; ok {
			if r.clientID != clientID {
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
	jti, ok := s.refreshKey.jti(token)
	if !ok {
		return "", "", op.ErrInvalidRefreshToken
	}
	r, ok := s.refresh[jti]
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

// The realm's single RS256 key signs every token.

func (s *store) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }

func (s *store) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *store) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{s.key}}, nil
}
