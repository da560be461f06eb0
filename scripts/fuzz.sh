#!/usr/bin/env bash
# Runs each fuzz target for a bounded time, one after the other, so that CI
# stays short: FUZZTIME per target (default 20s; e.g. FUZZTIME=5m locally).
# The seed corpora (testdata/fuzz/...) also run as ordinary tests in
# `go test ./...`. A failure leaves the crashing input under the package's
# testdata/fuzz/<target>/ (commit it, fix the bug) and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
[ "$GOTOOLCHAIN" = local ] && export GOTOOLCHAIN=auto
fuzztime="${FUZZTIME:-20s}"

targets=(
	"./server FuzzBearer"                 # Authorization header -> bearer/JWT validation
	"./pkg/discovery FuzzFetchEndpoints"  # the server's /api/v1/endpoints JSON
	"./pkg/login FuzzCallbackGuard"       # the loopback callback's query parameters
)
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	printf '\n==> fuzz %s %s for %s\n' "$pkg" "$name" "$fuzztime" >&2
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -parallel 2 "$pkg"
done
