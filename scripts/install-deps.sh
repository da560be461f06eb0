#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine: apt packages (when
# run as root), and tools built from the Go module proxy, cached under
# ~/.cache/pbench-auth so that later runs reuse them. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
[ "$GOTOOLCHAIN" = local ] && export GOTOOLCHAIN=auto

cache="${PBENCH_AUTH_CACHE:-$HOME/.cache/pbench-auth}"
bin="$cache/bin"
mkdir -p "$bin"

GOLANGCI_LINT_VERSION=v2.15.0
GOVULNCHECK_VERSION=v1.9.0
GORELEASER_VERSION=v2.15.1 # v2.16+ need a module the proxy here refuses
CRANE_VERSION=v0.22.1      # go-containerregistry's crane: the offline base image of scripts/image.sh
VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018

step() { printf '==> %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------
# python3-jwt, python3-requests, python3-cryptography: the test that
# validates the dev broker's tokens as Pbench's server does (PyJWT, RS256).
# postgresql: the real PostgreSQL of the API key tests (internal/testutil/pgtest runs
# initdb/pg_ctl itself, as the postgres user, on a Unix socket in a temp dir).
apt_pkgs=(gnome-keyring libsecret-tools dbus chromium curl wrk python3 python3-requests python3-jwt python3-cryptography postgresql)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# npm installs keycloak-js for the dev broker's browser test and checks the
# dashboard's vendored oidc-client-ts against the registry. Debian's npm
# only when there is no npm at all: a Node.js from elsewhere (NodeSource)
# brings its own and conflicts with Debian's package.
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    step "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
      --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
    [ "${CI:-}" = true ] && exit 1
  fi
fi

# --- Go tools --------------------------------------------------------------
install_tool() { # name module@version
  local name=$1 pkg=$2 stamp="$bin/.$1.version"
  if [ -x "$bin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$pkg" ]; then return; fi
  step "go install $pkg"
  (cd /tmp && GOBIN="$bin" go install "$pkg")
  echo "$pkg" >"$stamp"
}
install_tool golangci-lint "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION"
install_tool govulncheck "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION"
install_tool goreleaser "github.com/goreleaser/goreleaser/v2@$GORELEASER_VERSION"
install_tool crane "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"

# --- offline vulnerability database (the online one is unreachable here) ----
vulndb="$cache/vulndb-$VULNDB_VERSION"
if [ ! -f "$vulndb/index/db.json" ]; then
  step "building the offline vulnerability database ($VULNDB_VERSION)"
  src=$(cd /tmp && go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  rm -rf "$vulndb.tmp"
  (cd "$src" && GOFLAGS=-mod=mod go run ./cmd/indexdb -vulns "$src/data/osv" -out "$vulndb.tmp")
  mv "$vulndb.tmp" "$vulndb"
fi
ln -sfn "$vulndb" "$cache/vulndb"

# --- keycloak-js, Keycloak's own browser adapter (the dev broker's test) -----
# Exact versions with their integrity hashes in test/keycloak-js's lock file;
# npm ci refuses a package whose hash differs. Reinstalled when the lock
# file changes.
kcjs="$cache/keycloak-js"
lock_sum=$(sha256sum test/keycloak-js/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$kcjs/.lock.sha256" 2>/dev/null)" != "$lock_sum" ]; then
  step "npm ci keycloak-js (test/keycloak-js)"
  rm -rf "$kcjs"
  mkdir -p "$kcjs"
  cp test/keycloak-js/package.json test/keycloak-js/package-lock.json "$kcjs/"
  (cd "$kcjs" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" >"$kcjs/.lock.sha256"
fi

# --- Dex, the real broker of the end-to-end test -----------------------------
if [ -x test/e2e/dex/build.sh ]; then
  step "Dex"
  test/e2e/dex/build.sh
fi
