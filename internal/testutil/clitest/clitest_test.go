package clitest

import (
	"net/http"
	"os"
	"testing"
)

func TestFactoryEnvironment(t *testing.T) {
	hc := &http.Client{}
	f, out, _ := Factory(t, hc, map[string]string{"PBENCH_SERVER": "https://pbench.example.com", "XDG_CONFIG_HOME": "/cfg"})
	state := f.Getenv("XDG_STATE_HOME")
	if fi, err := os.Stat(state); err != nil || !fi.IsDir() {
		t.Errorf("XDG_STATE_HOME = %q (%v), want a directory of the test's own", state, err)
	}
	if got := f.Getenv("XDG_CONFIG_HOME"); got != "/cfg" {
		t.Errorf("XDG_CONFIG_HOME = %q, want the test's /cfg to win", got)
	}
	if got := f.Getenv("PBENCH_SERVER"); got != "https://pbench.example.com" {
		t.Errorf("PBENCH_SERVER = %q", got)
	}
	if got := f.Getenv("HOME"); got != "" {
		t.Errorf("HOME = %q, want nothing from the real environment", got)
	}
	if c, err := f.HTTPClient(""); c != hc || err != nil {
		t.Errorf("HTTPClient = %p, %v; want the client given", c, err)
	}
	_, _ = f.IO.Out.Write([]byte("x"))
	if out.String() != "x" {
		t.Errorf("stdout went elsewhere: %q", out.String())
	}
}
