#!/usr/bin/env bash
# The whole test suite, as CI runs it: static checks, unit and integration
# tests under -race with a real Secret Service, the end-to-end test on real
# processes (Dex, serve, the CLI, Chromium), and the first-run demo.
# Run scripts/install-deps.sh first (`make test` does).
#
# Deterministic: nothing here fuzzes. `go test` runs every fuzz target's
# committed corpus (testdata/fuzz/<target>/) and seeds; exploratory fuzzing is
# `make fuzz` (scripts/fuzz.sh), whose findings are committed as seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
[ "$GOTOOLCHAIN" = local ] && export GOTOOLCHAIN=auto
export PBENCH_AUTH_CACHE="${PBENCH_AUTH_CACHE:-$HOME/.cache/pbench-auth}" # kept by with-keyring.sh, which changes HOME
cache="$PBENCH_AUTH_CACHE"
export PATH="$cache/bin:$PATH"
step() { printf '\n==> %s\n' "$*" >&2; }

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
[ -z "$unformatted" ] || { echo "not gofmt-formatted:"; echo "$unformatted"; exit 1; }

step "go vet"
go vet ./...
go vet -tags e2e ./test/e2e/...

step "golangci-lint"
golangci-lint run --allow-parallel-runners ./...

step "generated files are fresh (completions, docs)"
scripts/generate.sh --check

step "the dashboard's vendored oidc-client-ts is the pinned npm release"
scripts/vendor-oidc-client-ts.sh --check

step "goreleaser: check the configuration, snapshot build of this platform"
goreleaser check
# goreleaser reads the remote's URL; a clone without a remote (a local copy,
# an unpacked tarball) would make it drop the whole git state and stamp the
# commit "none". Give it this checkout as a remote, for goreleaser only.
if [ -z "$(git remote)" ]; then
  export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=remote.origin.url GIT_CONFIG_VALUE_0="$PWD"
fi
goreleaser build --snapshot --clean --single-target --output dist/pbench-auth
unset GIT_CONFIG_COUNT GIT_CONFIG_KEY_0 GIT_CONFIG_VALUE_0
# The release's -ldflags must reach the binary: a snapshot version and this commit, not "dev".
v=$(dist/pbench-auth version --json)
echo "$v"
grep -q "\"commit\": \"$(git rev-parse HEAD)\"" <<<"$v"
grep -q '"version": "[0-9][^"]*-snapshot"' <<<"$v"

step "container image of serve: goreleaser + ko on an offline base image (scripts/image.sh)"
scripts/image.sh

step "govulncheck (offline database)"
govulncheck -db "file://$cache/vulndb" ./...

step "go test -race (Secret Service: gnome-keyring; browser: chromium)"
export PBENCH_AUTH_TEST_CHROMIUM=1
passed=0 skipped=0
# gotest ARGS...: go test -v under the real Secret Service, showing the
# package lines and any failure or skip. -v so that a skipped test is seen:
# in CI every real component is installed, so a test that skips there is a
# test that silently stopped running.
gotest() {
  local log status=0
  log=$(mktemp)
  scripts/with-keyring.sh go test -v "$@" >"$log" 2>&1 || status=$?
  grep -E '^(ok|FAIL|--- FAIL|--- SKIP|panic:)|^\s+--- (FAIL|SKIP)' "$log" || true
  if [ "$status" != 0 ]; then
    echo "go test failed; the failing tests' output:" >&2
    grep -B2 -A30 -E -- '--- FAIL' "$log" | head -300 >&2 || tail -100 "$log" >&2
    exit 1
  fi
  if [ "${CI:-}" = true ] && grep -qE -- '--- SKIP' "$log"; then
    echo "tests were skipped in CI, where every component they need is installed:" >&2
    grep -A1 -E -- '--- SKIP' "$log" >&2
    exit 1
  fi
  passed=$((passed + $(grep -cE '^ *--- PASS' "$log" || true)))
  skipped=$((skipped + $(grep -cE '^ *--- SKIP' "$log" || true)))
  rm -f "$log"
}
gotest -race -count=1 ./...

step "end to end: Dex IdP -> Dex broker -> serve -> CLI in Chromium, and the same on serve --dev"
gotest -tags e2e -count=1 -timeout 20m ./test/e2e/...

step "first run: pbench-auth demo"
scripts/with-keyring.sh go run ./cmd/pbench-auth demo

echo
echo "tests: $passed passed, 0 failed, $skipped skipped"
