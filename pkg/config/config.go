// Package config reads the CLI's configuration file,
// $XDG_CONFIG_HOME/pbench-auth/config.yaml, and normalises server URLs into
// profile names.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// File is the configuration file's content.
//
//	default-server: https://pbench.example.com
//	profiles:
//	  https://pbench.example.com:
//	    ca-cert: [/etc/pki/internal-ca.pem]
type File struct {
	DefaultServer string             `yaml:"default-server,omitempty"`
	Profiles      map[string]Profile `yaml:"profiles,omitempty"`
}

// Profile holds per-server settings.
type Profile struct {
	CACerts []string `yaml:"ca-cert,omitempty"`
}

// Load reads dir/config.yaml. A missing file is an empty configuration; a
// key Load does not know (a typo such as "ca-certs") is an error, as in
// serve's --config, rather than a setting silently ignored.
func Load(dir string) (*File, error) {
	path := filepath.Join(dir, "config.yaml")
	b, err := os.ReadFile(path) // #nosec G304 -- the user's own config file
	if errors.Is(err, os.ErrNotExist) {
		return &File{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &f, nil
}

// NormalizeServer turns a server URL as a user types it into the profile's
// canonical name: scheme and host lower-cased, default port and trailing
// slash dropped, no query or fragment. "pbench.example.com" means https.
func NormalizeServer(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", errors.New("empty server URL")
	}
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("server URL %q: %w", raw, err)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("server URL %q: scheme must be http or https", raw)
	}
	if u.Host == "" || u.User != nil {
		return "", fmt.Errorf("server URL %q: want scheme://host[:port][/path]", raw)
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	u.Host = host
	if strings.Contains(host, ":") {
		u.Host = "[" + host + "]"
	}
	if port != "" {
		u.Host += ":" + port
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath, u.RawQuery, u.Fragment, u.RawFragment = "", "", "", ""
	return u.String(), nil
}
