package devbroker

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// This file: device authorizations (op.DeviceAuthorizationStorage) and what
// the device pages need.

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
