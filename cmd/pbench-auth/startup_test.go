package main

import (
	"bufio"
	"bytes"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// deniedInits are packages whose init only `serve` needs, and which must not
// run in every pbench-auth process (client commands included): prefixes of
// import paths.
var deniedInits = []string{
	"github.com/prometheus/", // the Prometheus client: default registry, collectors, procfs
	"golang.org/x/net/html",  // its entity table (devbrowser reads pages with encoding/xml)
}

// knownInits are packages on the deny-list that still run at start,
// and why. The test fails when one stops, so that it moves to deniedInits.
var knownInits = map[string]string{
	"encoding/gob": "linked by github.com/gorilla/securecookie, imported by zitadel/oidc's pkg/http, " +
		"which the development broker's OpenID provider (zitadel/oidc's pkg/op) imports",
}

// maxDevbrokerInitAllocs bounds the allocations of server/devbroker's init:
// its package variables only; parsing its page template took about 370.
const maxDevbrokerInitAllocs = 20

// TestStartupRunsNoServerOnlyInits runs the binary as a client command would
// with GODEBUG=inittrace=1 and checks which package inits ran: none from
// deniedInits, and server/devbroker's without its templates.
func TestStartupRunsNoServerOnlyInits(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "pbench-auth")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "version") // #nosec G204 -- the binary just built
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1", "HOME="+home, "XDG_CONFIG_HOME="+home, "XDG_STATE_HOME="+home)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("pbench-auth version: %v\n%s", err, stderr.String())
	}
	inits := parseInitTrace(stderr.String())
	if len(inits) == 0 {
		t.Fatalf("no init trace on stderr: %q", stderr.String())
	}
	for pkg, allocs := range inits {
		for _, d := range deniedInits {
			if strings.HasPrefix(pkg, d) {
				t.Errorf("%s runs its init (%d allocations) at every start: only serve needs it", pkg, allocs)
			}
		}
		if strings.HasSuffix(pkg, "/server/devbroker") && allocs > maxDevbrokerInitAllocs {
			t.Errorf("server/devbroker's init makes %d allocations (at most %d): is a template parsed at init again?",
				allocs, maxDevbrokerInitAllocs)
		}
	}
	for pkg, why := range knownInits {
		if _, ok := inits[pkg]; ok {
			t.Logf("still runs at start: %s (%s)", pkg, why)
		} else {
			t.Errorf("%s no longer runs an init at start: move it from knownInits to deniedInits", pkg)
		}
	}
}

// parseInitTrace reads GODEBUG=inittrace=1 lines,
// "init PKG @0.5 ms, 0.01 ms clock, 72 bytes, 2 allocs", into PKG → allocs.
func parseInitTrace(s string) map[string]int {
	inits := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[0] != "init" || f[len(f)-1] != "allocs" {
			continue
		}
		n, err := strconv.Atoi(f[len(f)-2])
		if err != nil {
			continue
		}
		pkg := f[1] // escaped as in symbol names: gopkg.in/yaml%2ev3
		if unq, err := url.PathUnescape(pkg); err == nil {
			pkg = unq
		}
		inits[pkg] = n
	}
	return inits
}

func TestParseInitTrace(t *testing.T) {
	got := parseInitTrace("init encoding/gob @2.0 ms, 0.21 ms clock, 26208 bytes, 359 allocs\n" +
		"init gopkg.in/yaml%2ev3 @40 ms, 0.14 ms clock, 25720 bytes, 276 allocs\npbench-auth v1\ninit bad line\n")
	if len(got) != 2 || got["encoding/gob"] != 359 || got["gopkg.in/yaml.v3"] != 276 {
		t.Errorf("parseInitTrace = %v", got)
	}
}
