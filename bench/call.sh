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
# Then, when BENCH_KUBELOGIN_BIN names a kubelogin binary, the same way:
#   pbench-auth version             against  kubelogin version          (OUT_PREFIX-version.R.json)
#   pbench-auth token (file store)  against  kubelogin get-token, warm  (OUT_PREFIX-token.R.json)
# kubelogin logs in at the same broker first (authorization code flow,
# benchtool as its browser), so that get-token then answers from its disk
# cache, as token does from the file store.
#
# Environment: BENCH_CALL_RUNS (default 100), BENCH_ROUNDS (default 5), BENCH_CLIENT_CPU (taskset -c
# for the measured processes; empty: no pinning), BENCH_KUBELOGIN_BIN.
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

# pair OUT A_NAME A_CMD B_NAME B_CMD: hyperfine rounds of A against B, the
# order alternating; round R's figures in OUT.R.json.
pair() {
	local o=$1 a=(--command-name "$2" "$3") b=(--command-name "$4" "$5") r order
	for r in $(seq "$rounds"); do
		if [ $((r % 2)) -eq 1 ]; then order=("${a[@]}" "${b[@]}"); else order=("${b[@]}" "${a[@]}"); fi
		"${pin[@]}" hyperfine -N --style basic --warmup 3 --runs "$runs" --export-json "$o.$r.json" "${order[@]}" >&2
	done
}
pair "$out" "pbench-auth call ($store)" "$pa call /api/v1/user" curl "curl -sf -H @$scratch/header $server/api/v1/user"

kl=${BENCH_KUBELOGIN_BIN:-}
if [ -n "$kl" ]; then
	# token from the file store, logged in like the keyring's.
	XDG_STATE_HOME="$scratch/state-file" XDG_CONFIG_HOME="$scratch/config-file" PBENCH_AUTH_TOKEN_STORE=file \
		"$pa" login --browser-command "$benchtool browse -user user -pass user" --timeout 1m >/dev/null
	# kubelogin opens its own loopback page, which redirects to the broker;
	# it runs the browser command as one program, without a shell.
	printf '#!/bin/sh\nexec "%s" browse -user user -pass user "$(curl -sf -o /dev/null -w %%{redirect_url} "$1")"\n' \
		"$benchtool" >"$scratch/kl-browser"
	chmod 0700 "$scratch/kl-browser"
	issuer=$(curl -sf "$server/api/v1/endpoints" | python3 -c 'import json, sys; print(json.load(sys.stdin)["openid"]["issuer"])')
	klargs="get-token --oidc-issuer-url=$issuer --oidc-client-id=pbench-client --token-cache-dir=$scratch/kube"
	# shellcheck disable=SC2086 # klargs is split on purpose (no spaces inside its words)
	timeout 60 "$kl" $klargs --listen-address=127.0.0.1:0 --browser-command="$scratch/kl-browser" >/dev/null
	# Both answer from their cache from now on; neither calls the broker.
	pair "$out-version" "pbench-auth version" "$pa version" "kubelogin version" "$kl version"
	pair "$out-token" "pbench-auth token (file)" \
		"env XDG_STATE_HOME=$scratch/state-file XDG_CONFIG_HOME=$scratch/config-file PBENCH_AUTH_TOKEN_STORE=file $pa token" \
		"kubelogin get-token" "$kl $klargs"
fi

"$pa" logout >/dev/null 2>&1 || true
