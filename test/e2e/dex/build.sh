#!/usr/bin/env bash
# Builds the Dex binary the end-to-end test runs as identity provider and as
# identity broker, and prints its path on stdout.
#
#   test/e2e/dex/build.sh            # build once, then reuse the cached binary
#   PBENCH_AUTH_DEX_REBUILD=1 ...    # build again even when cached
#
# The binary is cached at ~/.cache/pbench-auth/dex-$DEX_VERSION (override the
# directory with PBENCH_AUTH_CACHE); point the test at it with
# PBENCH_AUTH_DEX=<path>, or let the test find it in that cache. A cold build
# takes about 3 minutes on 2 cores and needs the Go module proxy.
#
# Why the detour: the Dex commit below is the only one that builds here, and it
# needs github.com/dexidp/dex/api/v2 types newer than v2.4.0, the only api/v2
# on the proxy. This script copies v2.4.0 from the module cache into a
# throw-away directory, adds the missing fields to five generated structs and
# the missing types from apiv2_gap.go.in, and builds Dex in this directory's
# module (go.mod/go.sum) with api/v2 replaced by that copy.
set -euo pipefail

DEX_VERSION=v0.0.0-20260806151424-ab64ed778070
API_VERSION=v2.4.0

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${PBENCH_AUTH_CACHE:-$HOME/.cache/pbench-auth}
out=$cache/dex-$DEX_VERSION

if [[ -x $out && -z ${PBENCH_AUTH_DEX_REBUILD:-} ]]; then
	echo "$out"
	exit 0
fi

export GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
[[ $GOTOOLCHAIN == local ]] && export GOTOOLCHAIN=auto
export GOFLAGS=-mod=mod

work=$(mktemp -d)
trap 'chmod -R u+w "$work" && rm -rf "$work"' EXIT

cp "$here/go.mod" "$here/go.sum" "$work/"
apidir=$(cd "$work" && go mod download -json "github.com/dexidp/dex/api/v2@$API_VERSION" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -d $apidir ]] || { echo "build.sh: cannot download github.com/dexidp/dex/api/v2@$API_VERSION" >&2; exit 1; }
cp -r "$apidir" "$work/apiv2"
chmod -R u+w "$work/apiv2"

# Fields the newer Dex reads and writes on messages v2.4.0 already has. They
# carry no protobuf tag, so the protobuf runtime ignores them.
awk '
	/^type (Client|ClientInfo) struct/ { add = "\tAllowedConnectors, SsoSharedWith, PostLogoutRedirectUris []string\n\tBackchannelLogoutUri, RefreshTokenLifetime string" }
	/^type UpdateClientReq struct/     { add = "\tAllowedConnectors, SsoSharedWith, PostLogoutRedirectUris []string\n\tBackchannelLogoutUri, RefreshTokenLifetime *string" }
	/^type Connector struct/           { add = "\tGrantTypes []string" }
	/^type UpdateConnectorReq struct/  { add = "\tNewGrantTypes *GrantTypes" }
	/^\tunknownFields / && add != ""   { print add; add = "" }
	{ print }
' "$apidir/api.pb.go" >"$work/apiv2/api.pb.go"
cp "$here/apiv2_gap.go.in" "$work/apiv2/gap.go"

mkdir -p "$cache"
(cd "$work" && go build -trimpath -o "$out.tmp" github.com/dexidp/dex/cmd/dex)
mv "$out.tmp" "$out"
echo "$out"
