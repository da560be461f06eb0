package devbroker

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// This file: clients and the claims of tokens, userinfo and introspection
// (op.OPStorage).

func (s *store) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	switch id {
	case s.clientID:
		return &publicClient{id: id, loginURL: s.issuer + "/login-actions/authenticate", idTTL: s.accessTTL, config: s.client}, nil
	case DefaultIntrospectionClientID:
		return &introspectionClient{}, nil
	}
	// An OAuth error (400/401), never a server error; the id is not echoed.
	return nil, oidc.ErrInvalidClient().WithDescription("Client not found: the development broker knows only the client %s", s.clientID)
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
		"allowed-origins":    s.client.origins,
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

// roleClaims are Keycloak's role claims: the user's roles as realm roles,
// and as client roles of clientID and of every client of the audience
// (Pbench's server reads them under resource_access["pbench-server"]), plus
// the realm's default roles.
func (s *store) roleClaims(a *account, clientID string) map[string]any {
	realmRoles := append(slices.Clone(a.Roles), "default-roles-"+s.realm, "offline_access", "uma_authorization")
	resource := map[string]any{
		"account": map[string]any{"roles": []string{"manage-account", "manage-account-links", "view-profile"}},
	}
	if len(a.Roles) > 0 {
		for _, c := range append([]string{clientID}, s.audience...) {
			if c != "account" {
				resource[c] = map[string]any{"roles": slices.Clone(a.Roles)}
			}
		}
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
