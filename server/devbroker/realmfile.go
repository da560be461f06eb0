package devbroker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"
)

// RealmFile is a small realm description for serve --dev: the users and the
// public client's settings, with Keycloak's names for them. Example:
//
//	users:
//	  - username: admin
//	    password: admin
//	    roles: [ADMIN]
//	client:
//	  redirectUris: ["http://localhost:3000/*"]
//	  webOrigins: ["http://localhost:3000"]
//	  postLogoutRedirectUris: ["+"]
//	  pkceRequired: false
//	  directAccessGrantsEnabled: true
type RealmFile struct {
	Users  []User
	Client ClientSettings
}

type realmFileYAML struct {
	Users []struct {
		Username string   `yaml:"username"`
		Password string   `yaml:"password"`
		Email    string   `yaml:"email"`
		Roles    []string `yaml:"roles"`
	} `yaml:"users"`
	Client struct {
		RedirectURIs           []string `yaml:"redirectUris"`
		PostLogoutRedirectURIs []string `yaml:"postLogoutRedirectUris"`
		WebOrigins             []string `yaml:"webOrigins"`
		PKCERequired           bool     `yaml:"pkceRequired"`
		DirectAccessGrants     *bool    `yaml:"directAccessGrantsEnabled"`
	} `yaml:"client"`
}

const maxRealmFileBytes = 1 << 20

// LoadRealmFile reads a realm file (see RealmFile). Unknown keys are errors,
// so a misspelt setting is not silently ignored. The file holds passwords:
// errors name users, never passwords.
func LoadRealmFile(path string) (*RealmFile, error) {
	f, err := os.Open(path) //nolint:gosec // G304: the operator names the realm file (--dev-realm-file)
	if err != nil {
		return nil, fmt.Errorf("realm file: %w", err)
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, maxRealmFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("realm file %s: %w", path, err)
	}
	if len(data) > maxRealmFileBytes {
		return nil, fmt.Errorf("realm file %s is larger than %d bytes", path, maxRealmFileBytes)
	}
	var y realmFileYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&y); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("realm file %s: %w (see serve --help for its keys)", path, err)
	}
	rf := &RealmFile{Client: ClientSettings{
		RedirectURIs:           y.Client.RedirectURIs,
		PostLogoutRedirectURIs: y.Client.PostLogoutRedirectURIs,
		WebOrigins:             y.Client.WebOrigins,
		RequirePKCE:            y.Client.PKCERequired,
	}}
	if y.Client.DirectAccessGrants != nil {
		rf.Client.DisableDirectAccessGrants = !*y.Client.DirectAccessGrants
	}
	for i, u := range y.Users {
		if u.Username == "" || u.Password == "" {
			return nil, fmt.Errorf("realm file %s: user %d (%q): username and password are required", path, i+1, u.Username)
		}
		rf.Users = append(rf.Users, User{Name: u.Username, Password: u.Password, Email: u.Email, Roles: u.Roles})
	}
	if _, err := newClientConfig(rf.Client); err != nil {
		return nil, fmt.Errorf("realm file %s: client: %w", path, err)
	}
	return rf, nil
}
