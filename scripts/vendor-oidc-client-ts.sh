#!/usr/bin/env bash
# Vendors oidc-client-ts's shipped browser build into the dashboard's assets,
# pinned by version and checked against the npm registry's integrity hash.
#
#   scripts/vendor-oidc-client-ts.sh           # fetch the version in the pin file again, rewrite file + pin
#   scripts/vendor-oidc-client-ts.sh 3.5.0     # move to another exact 3.x version (make vendor-oidc-client-ts V=3.5.0)
#   scripts/vendor-oidc-client-ts.sh --check   # CI: the vendored file is byte for byte the pinned release's
#
# The pin file (server/dashboard/assets/vendor/oidc-client-ts.pin) records the
# version, the package tarball's integrity as the registry publishes it
# (sha512, Subresource-Integrity form), the path of the file inside the
# package, and the file's own sha256 (checked offline by the Go tests).
# `npm pack` verifies the tarball against the registry's integrity; this
# script also compares that integrity with the pin, so a registry answering
# something else for the same version fails the check.
set -euo pipefail
cd "$(dirname "$0")/.."

pkg=oidc-client-ts
dir=server/dashboard/assets/vendor
pin=$dir/$pkg.pin
# The shipped browser build: one file, its one dependency (jwt-decode) bundled
# in, defining the global "oidc"; the dashboard's ES module oidc.js re-exports it.
inner=dist/browser/oidc-client-ts.min.js
out=$dir/oidc-client-ts.min.js

field() { sed -n "s/^$1 //p" "$pin"; }

check=false version=""
case "${1:-}" in
--check) check=true; version=$(field version) ;;
"") version=$(field version) ;;
*) version=$1 ;;
esac
if ! [[ $version =~ ^3\.[0-9]+\.[0-9]+$ ]]; then
  echo "vendor-oidc-client-ts: want an exact 3.x version such as 3.5.0, got '$version'" >&2
  exit 2
fi
command -v npm >/dev/null || { echo "vendor-oidc-client-ts: npm is needed (apt-get install npm)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# --ignore-scripts: nothing of the package runs here; the cache is private so
# that a poisoned shared cache cannot answer.
json=$(cd "$work" && npm pack "$pkg@$version" --json --ignore-scripts --cache "$work/cache" 2>"$work/npm.log") || {
  cat "$work/npm.log" >&2
  echo "vendor-oidc-client-ts: npm pack $pkg@$version failed (is the npm registry reachable?)" >&2
  exit 1
}
integrity=$(node -e 'const a = JSON.parse(process.argv[1]); process.stdout.write(a[0].integrity)' "$json")
tarball=$(node -e 'const a = JSON.parse(process.argv[1]); process.stdout.write(a[0].filename)' "$json")
tar -xzf "$work/$tarball" -C "$work" "package/$inner" package/LICENSE
file_sha=$(sha256sum "$work/package/$inner" | cut -d' ' -f1)

if $check; then
  status=0
  if [ "$integrity" != "$(field integrity)" ]; then
    echo "vendor-oidc-client-ts: the registry's $pkg@$version has integrity $integrity, the pin says $(field integrity)" >&2
    status=1
  fi
  if ! cmp -s "$work/package/$inner" "$out"; then
    echo "vendor-oidc-client-ts: $out is not $pkg@$version's $inner: run 'make vendor-oidc-client-ts' and commit" >&2
    status=1
  fi
  if [ "$file_sha" != "$(field sha256)" ]; then
    echo "vendor-oidc-client-ts: the pin's sha256 is not the file's ($file_sha)" >&2
    status=1
  fi
  [ $status = 0 ] && echo "vendor-oidc-client-ts: $out is $pkg@$version ($integrity)" >&2
  exit $status
fi

cp "$work/package/$inner" "$out"
cp "$work/package/LICENSE" "$dir/oidc-client-ts.LICENSE"
cat >"$pin" <<PIN
# oidc-client-ts vendored by scripts/vendor-oidc-client-ts.sh: do not edit by hand.
package $pkg
version $version
integrity $integrity
file $inner
sha256 $file_sha
PIN
echo "vendor-oidc-client-ts: vendored $pkg@$version ($integrity) into $out" >&2
