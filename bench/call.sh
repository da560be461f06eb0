#!/usr/bin/env bash
# bench/call.sh SERVER_URL PBENCH_AUTH BENCHTOOL STORE OUT_PREFIX
#
# Part 6 of bench/run.sh: whole-process wall time of
#   pbench-auth call /api/v1/user      (token read from the token store STORE)
# against
#   curl -H @FILE SERVER_URL/api/v1/user (the same token, from a 0600 file)
# with hyperfine (-N: no shell in between), in BENCH_ROUNDS rounds of
# BENCH_CALL_RUNS/BENCH_ROUNDS runs of each, the order alternating, so that
# a change in the machine's load hits both; round R's figures go to
# OUT_PREFIX.R.json.
# run.sh runs it under scripts/with-keyring.sh for STORE=keyring, so the
# keyring is a real, throw-away Secret Service. Logs in first as the
# development broker's user "user", with benchtool as the browser.
#
# Environment: BENCH_CALL_RUNS (default 100), BENCH_ROUNDS (default 5), BENCH_CLIENT_CPU (taskset -c
# for the measured processes; empty: no pinning).
set -euo pipefail

if [ $# -ne 5 ]; then
	echo "usage: $0 SERVER_URL PBENCH_AUTH BENCHTOOL STORE OUT_PREFIX" >&2
	exit 2
fi
server=$1 pa=$2 benchtool=$3 store=$4 out=$5
rounds=${BENCH_ROUNDS:-5}
runs=$(((${BENCH_CALL_RUNS:-100} + rounds - 1) / rounds))
pin=()
if [ -n "${BENCH_CLIENT_CPU:-}" ]; then
	pin=(taskset -c "$BENCH_CLIENT_CPU")
fi

# Nothing of the user's own: a scratch config and state (with-keyring.sh
# already gives a throw-away HOME; this covers a run without it).
scratch=$(mktemp -d "${TMPDIR:-/tmp}/pbench-auth-bench-call.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export XDG_CONFIG_HOME="$scratch/config" XDG_STATE_HOME="$scratch/state"
export PBENCH_SERVER="$server" PBENCH_AUTH_TOKEN_STORE="$store"

"$pa" login --browser-command "$benchtool browse -user user -pass user" --timeout 1m >/dev/null
# The same token for curl, in a 0600 file, never on a command line.
(umask 077 && "$pa" token --header >"$scratch/header")

call=(--command-name "pbench-auth call ($store)" "$pa call /api/v1/user")
curl=(--command-name curl "curl -sf -H @$scratch/header $server/api/v1/user")
for r in $(seq "$rounds"); do
	if [ $((r % 2)) -eq 1 ]; then order=("${call[@]}" "${curl[@]}"); else order=("${curl[@]}" "${call[@]}"); fi
	"${pin[@]}" hyperfine -N --style basic --warmup 3 --runs "$runs" --export-json "$out.$r.json" "${order[@]}" >&2
done

"$pa" logout >/dev/null 2>&1 || true
