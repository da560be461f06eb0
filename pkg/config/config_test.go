package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNormalizeServer(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://Pbench.Example.com/", "https://pbench.example.com"},
		{"pbench.example.com", "https://pbench.example.com"},
		{"https://pbench.example.com:443", "https://pbench.example.com"},
		{"http://127.0.0.1:8080/", "http://127.0.0.1:8080"},
		{"http://localhost:80", "http://localhost"},
		{"https://h.example/pbench//?x=1#f", "https://h.example/pbench"},
		{"http://[::1]:9000", "http://[::1]:9000"},
	}
	for _, tt := range tests {
		got, err := NormalizeServer(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("NormalizeServer(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "ftp://x", "https://", "https://user:pw@h"} {
		if got, err := NormalizeServer(bad); err == nil {
			t.Errorf("NormalizeServer(%q) = %q, want an error", bad, got)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	f, err := Load(dir)
	if err != nil || f.DefaultServer != "" {
		t.Fatalf("missing file: %+v, %v", f, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"),
		[]byte("default-server: https://p.example\nprofiles:\n  https://p.example:\n    ca-cert: [/ca.pem]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err = Load(dir)
	if err != nil || f.DefaultServer != "https://p.example" || f.Profiles["https://p.example"].CACerts[0] != "/ca.pem" {
		t.Fatalf("Load = %+v, %v", f, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("default-server: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil {
		t.Fatal("malformed YAML: want an error")
	}
}

// Unknown keys are errors that name the key: a typo must not be a setting
// silently ignored. An empty file is an empty configuration.
func TestLoadIsStrict(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]string{
		"default-sever: https://p.example\n":                         "default-sever",
		"profiles:\n  https://p.example:\n    ca-certs: [/ca.pem]\n": "ca-certs",
		"":                   "",
		"# only a comment\n": "",
	} {
		if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := Load(dir)
		switch {
		case want == "" && (err != nil || f == nil):
			t.Errorf("%q: %v, want an empty configuration", content, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "config.yaml")):
			t.Errorf("%q: %v, want an error naming %q and the file", content, err, want)
		}
	}
}
