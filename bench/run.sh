#!/usr/bin/env bash
# bench/run.sh — the performance benchmark of issue 7 (make bench).
#
# Prints, from one run on loopback, the figures and ratios of
# docs/performance.md and PASS/FAIL per target:
#   1. serve on /api/v1/user with one repeated token vs its own /healthz (wrk)
#   2. the same with a distinct, first-seen token on every request
#   3. the anchor: a Pbench-like Flask app under gunicorn (PyJWT per call)
#   4. go test -bench: first-seen check vs the raw RSA verify, cache hit
#   5. RSS of serve after 100k distinct tokens (VmHWM, VmRSS)
#   6. pbench-auth call vs curl, whole-process wall time (hyperfine)
#   7. API keys (issue 16): a repeated key vs the repeated token (wrk, in the
#      rounds of 1), and a first-seen key's database lookup on SQLite and on
#      PostgreSQL (go test -bench ./server/apikey; PostgreSQL from Debian's
#      postgresql package, started by the benchmark on a Unix socket)
#   8. the gateway side by side with its peers, one token, one upstream
#      (benchtool upstream): the upstream alone, pbench-auth serve
#      --upstream, oauth2-proxy v7.15.6 as a JWT-bearer gateway; req/s,
#      CPU per request of each server and new upstream connections per
#      request; an SVG plot of the req/s (BENCH_PLOT)
#   9. start-up against kubelogin v1.36.3: version, token (file store) vs
#      get-token with a warm cache (hyperfine, in call.sh)
# Always exits 0 once it has measured (benchmarks inform); 1 if it could not
# run (a tool missing, a server that did not start).
#
# Environment (defaults):
#   BENCH_DURATION=3s     each wrk run, after a 2s warm-up of each server
#   BENCH_ROUNDS=5        rounds of healthz / repeated / anchor / first-seen, and of
#                         go test -bench; medians of figures and of per-round ratios
#   BENCH_FIRST_DURATION=1s  each first-seen wrk run (one per round; 5 rounds at
#                         10k req/s take half the tokens)
#   BENCH_CONNECTIONS=16  wrk connections (one wrk thread)
#   BENCH_TOKENS=100000   distinct tokens minted (= the RSS target's count)
#   BENCH_CALL_RUNS=100   hyperfine runs of call and of curl
#   BENCH_TOKEN_STORE=keyring  store for part 6: keyring (under
#                         scripts/with-keyring.sh) or file
#   BENCH_KEEP=           non-empty: keep the scratch directory (tokens, logs)
#   BENCH_PLOT=           where to write the req/s plot (SVG); default: none
#   BENCH_CACHE=~/.cache/pbench-auth/bench  where the peers' binaries are kept
#   BENCH_OAUTH2_PROXY=   an oauth2-proxy binary; default: built from the Go
#                         module proxy (github.com/oauth2-proxy/oauth2-proxy/v7
#                         @v7.15.6) into BENCH_CACHE
#   BENCH_KUBELOGIN=      a kubelogin binary; default: BENCH_CACHE/kubelogin-v1.36.3,
#                         built from BENCH_KUBELOGIN_SRC if missing
#   BENCH_KUBELOGIN_SRC=  a kubelogin source tree, or a git directory with the
#                         tag v1.36.3 (kubelogin does not build from the module
#                         proxy); without either, the kubelogin figures are
#                         reported as not measured
#   BENCH_APIKEY_HEADER_FILE=  a file with one header line carrying an API key
#                         for the gateway's API-key run (default: the key the
#                         benchmark makes at serve's /api/v1/key)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"

duration=${BENCH_DURATION:-3s}
rounds=${BENCH_ROUNDS:-5}
first_duration=${BENCH_FIRST_DURATION:-1s}
conns=${BENCH_CONNECTIONS:-16}
ntokens=${BENCH_TOKENS:-100000}
store=${BENCH_TOKEN_STORE:-keyring}
export BENCH_CALL_RUNS=${BENCH_CALL_RUNS:-100} BENCH_ROUNDS=$rounds

say() { printf '%s\n' "$*" >&2; }
die() {
	say "bench: $*"
	exit 1
}

# --- what it needs ---------------------------------------------------------
install_deps() {
	local missing=()
	command -v wrk >/dev/null || missing+=(wrk)
	command -v hyperfine >/dev/null || missing+=(hyperfine)
	command -v gunicorn >/dev/null || missing+=(gunicorn)
	command -v curl >/dev/null || missing+=(curl)
	if [ "$store" = keyring ]; then
		command -v dbus-run-session >/dev/null || missing+=(dbus)
		command -v gnome-keyring-daemon >/dev/null || missing+=(gnome-keyring)
	fi
	/usr/bin/python3 -c 'import flask' 2>/dev/null || missing+=(python3-flask)
	/usr/bin/python3 -c 'import jwt, cryptography' 2>/dev/null || missing+=(python3-jwt python3-cryptography)
	[ ${#missing[@]} -eq 0 ] && return
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
		say "bench: installing ${missing[*]}"
		apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}" >&2 ||
			{ apt-get -o DPkg::Lock::Timeout=600 update >&2 &&
				apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}" >&2; } ||
			die "apt-get install ${missing[*]} failed"
	else
		die "missing ${missing[*]}: install them (Debian: sudo apt-get install ${missing[*]}) or run as root"
	fi
}
install_deps
command -v go >/dev/null || die "go not found: install Go (go.mod's toolchain is fetched with GOTOOLCHAIN=auto)"

# Two cores or more: wrk (and the measured client processes) on CPU 0, the
# server under test on CPU 1, so they do not compete for one core.
client_pin=() server_pin=()
export BENCH_CLIENT_CPU=
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	client_pin=(taskset -c 0) server_pin=(taskset -c 1)
	BENCH_CLIENT_CPU=0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/pbench-auth-bench.XXXXXX")
chmod 0700 "$work"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ -n "${BENCH_KEEP:-}" ]; then say "bench: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
results=$work/results

say "bench: building pbench-auth and bench/benchtool"
go build -o "$work/pbench-auth" ./cmd/pbench-auth
go build -o "$work/benchtool" ./bench/benchtool

# --- the peers -----------------------------------------------------------------
cache=${BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pbench-auth/bench}
mkdir -p "$cache"
o2p_version=v7.15.6 kl_version=v1.36.3
oauth2_proxy=${BENCH_OAUTH2_PROXY:-$cache/oauth2-proxy-$o2p_version}
if [ ! -x "$oauth2_proxy" ]; then
	say "bench: building oauth2-proxy $o2p_version from the Go module proxy (once; kept in $cache)"
	GOBIN="$work/gobin" go install "github.com/oauth2-proxy/oauth2-proxy/v7@$o2p_version" >&2 ||
		die "go install github.com/oauth2-proxy/oauth2-proxy/v7@$o2p_version failed"
	mv "$work/gobin/oauth2-proxy" "$oauth2_proxy"
fi
kubelogin=${BENCH_KUBELOGIN:-$cache/kubelogin-$kl_version}
if [ ! -x "$kubelogin" ] && [ -n "${BENCH_KUBELOGIN_SRC:-}" ]; then
	say "bench: building kubelogin $kl_version from $BENCH_KUBELOGIN_SRC (once; kept in $cache)"
	src=$BENCH_KUBELOGIN_SRC
	if git --git-dir "$src" rev-parse -q --verify "refs/tags/$kl_version" >/dev/null 2>&1; then
		mkdir "$work/kubelogin-src"
		git --git-dir "$src" archive "$kl_version" | tar -x -C "$work/kubelogin-src"
		src=$work/kubelogin-src
	fi
	(cd "$src" && go build -o "$kubelogin" -ldflags "-X main.version=$kl_version" .) >&2 ||
		die "building kubelogin in $src failed"
fi
[ -x "$kubelogin" ] || kubelogin=
export BENCH_KUBELOGIN_BIN=$kubelogin

# waitfor FILE REGEX: the first match of REGEX's group 1 in FILE, within 20s.
waitfor() {
	local i
	for i in $(seq 200); do
		if grep -Eo "$2" "$1" 2>/dev/null | head -1 | grep -q .; then
			grep -Eo "$2" "$1" | head -1 | sed -E "s#$2#\\1#"
			return
		fi
		sleep 0.1
	done
	sed 's/^/  | /' "$1" >&2
	die "timed out waiting for /$2/ in $1"
}

# --- the servers -----------------------------------------------------------
# The upstream API of the gateways, on the servers' core.
"${server_pin[@]}" "$work/benchtool" upstream -listen 127.0.0.1:0 2>"$work/upstream.log" &
up_pid=$!
pids+=("$up_pid")
up_url=$(waitfor "$work/upstream.log" 'listening on (http://127\.0\.0\.1:[0-9]+)')
up_port=${up_url##*:}

# serve --dev: the validating server and its development broker; the key is
# kept in a file so that benchtool can sign tokens the server accepts.
"${server_pin[@]}" "$work/pbench-auth" serve --dev --listen 127.0.0.1:0 --dev-key "$work/key.pem" \
	--dev-token-ttl 1h --upstream "$up_url" >/dev/null 2>"$work/serve.log" &
serve_pid=$!
pids+=("$serve_pid")
serve_url=$(waitfor "$work/serve.log" 'listening on (http://127\.0\.0\.1:[0-9]+)')
issuer=$serve_url/realms/pbench-server
curl -sf --retry 20 --retry-connrefused --retry-delay 0 "$serve_url/readyz" >/dev/null || die "serve is not ready"

say "bench: minting $ntokens tokens with the broker's key (about 1 ms each)"
"$work/benchtool" mint -issuer "$issuer" -key "$work/key.pem" -n "$ntokens" \
	-tokens "$work/tokens" -header "$work/header"

# The anchor: Pbench's way of checking a token, under gunicorn's default
# (sync) workers, two of them, on the server's core.
ANCHOR_REALM_URL=$issuer "${server_pin[@]}" gunicorn --workers 2 --bind 127.0.0.1:0 \
	--chdir "$here/anchor" app:app >/dev/null 2>"$work/anchor.log" &
pids+=("$!")
anchor_url=$(waitfor "$work/anchor.log" 'Listening at: (http://127\.0\.0\.1:[0-9]+)')
for i in $(seq 100); do
	curl -sf -H @"$work/header" "$anchor_url/api/v1/user" >/dev/null && break
	[ "$i" -lt 100 ] || die "the anchor does not accept the broker's token (see $work/anchor.log)"
	sleep 0.1
done
curl -sf -H @"$work/header" "$serve_url/api/v1/user" >/dev/null || die "serve does not accept the broker's token"
# An API key of the token's user (in serve --dev's temporary SQLite file), for the repeated-key runs.
curl -sf -X POST -H @"$work/header" "$serve_url/api/v1/key?label=bench" |
	/usr/bin/python3 -c 'import json, sys; print("Authorization: Bearer " + json.load(sys.stdin)["key"])' >"$work/keyheader" ||
	die "serve did not create an API key"
curl -sf -H @"$work/header" "$serve_url/api/v1/datasets" >/dev/null || die "serve's gateway does not answer"

# oauth2-proxy as a JWT-bearer gateway to the same upstream: it checks the
# Bearer token against the broker's keys (OIDC discovery) and proxies; no
# cookie session is ever made. Its client secret and cookie secret are
# throw-away values it insists on.
(umask 077 && head -c 32 /dev/urandom | base64 | tr -d '\n=' | head -c 32 >"$work/cookie-secret")
OAUTH2_PROXY_COOKIE_SECRET=$(cat "$work/cookie-secret") OAUTH2_PROXY_CLIENT_SECRET=unused \
	"${server_pin[@]}" "$oauth2_proxy" --http-address 127.0.0.1:0 --upstream "$up_url" \
	--provider oidc --oidc-issuer-url "$issuer" --client-id pbench-client \
	--skip-jwt-bearer-tokens --extra-jwt-issuers "$issuer=pbench-client" --email-domain '*' \
	--insecure-oidc-allow-unverified-email --cookie-secure=false --skip-provider-button \
	>"$work/oauth2-proxy.log" 2>&1 &
o2p_pid=$!
pids+=("$o2p_pid")
# It does not say which port :0 gave it: its listening socket does (/proc).
for i in $(seq 100); do
	o2p_port=$("$work/benchtool" conns -pid "$o2p_pid" -listening 2>/dev/null) && break
	kill -0 "$o2p_pid" 2>/dev/null || { sed 's/^/  | /' "$work/oauth2-proxy.log" >&2; die "oauth2-proxy did not start"; }
	sleep 0.2
done
[ -n "${o2p_port:-}" ] || die "oauth2-proxy listens on no port (see $work/oauth2-proxy.log)"
o2p_url=http://127.0.0.1:$o2p_port
for i in $(seq 100); do
	curl -sf -H @"$work/header" "$o2p_url/api/v1/datasets" >/dev/null && break
	[ "$i" -lt 100 ] || { sed 's/^/  | /' "$work/oauth2-proxy.log" >&2; die "oauth2-proxy does not accept the broker's token"; }
	sleep 0.2
done

# --- load runs (wrk) -------------------------------------------------------
# cputicks PID: user + system CPU time of the whole process, in clock ticks.
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# wrkrun NAME URL DURATION [VAR=VALUE...]: one wrk run with bench/wrk/bench.lua,
# its RESULT line appended to $results as "wrk NAME ...". Runs against serve
# also record serve's CPU time per request (cpu_us), which, unlike req/s,
# does not depend on how much of the machine other processes take.
wrkrun() {
	local name=$1 url=$2 d=$3
	shift 3
	local line c0 c1 n cpu=""
	c0=$(cputicks "$serve_pid")
	line=$(env "$@" "${client_pin[@]}" wrk -t1 -c"$conns" -d"$d" --latency -s "$here/wrk/bench.lua" "$url" |
		grep '^RESULT ') || die "wrk $name: no result"
	c1=$(cputicks "$serve_pid")
	if [ "$url" = "$serve_url" ]; then
		n=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")
		cpu=" cpu_us=$(awk -v t=$((c1 - c0)) -v hz="$hz" -v n="$n" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}')"
	fi
	echo "wrk $name ${line#RESULT }$cpu" >>"$results"
	say "  $name: ${line#RESULT }$cpu"
}
health=(BENCH_PATH=/healthz)
# /healthz with a header as long as the token's: what carrying the token
# costs net/http and the kernel, apart from checking it.
awk '{s = "X-Padding: "; while (length(s) < length($0)) s = s "a"; print s}' "$work/header" >"$work/padding"
padded=(BENCH_PATH=/healthz BENCH_HEADER_FILE="$work/padding")
repeated=(BENCH_PATH=/api/v1/user BENCH_HEADER_FILE="$work/header")
keyed=(BENCH_PATH=/api/v1/user BENCH_HEADER_FILE="$work/keyheader")

say "bench: warm-up"
wrkrun warmup "$serve_url" 2s "${health[@]}"
wrkrun warmup "$serve_url" 2s "${repeated[@]}"
wrkrun warmup "$serve_url" 2s "${keyed[@]}"
wrkrun warmup "$anchor_url" 2s "${repeated[@]}"
: >"$results"

say "bench: $rounds rounds of healthz / repeated token / anchor ($duration each) and first-seen ($first_duration)"
used=0
for r in $(seq "$rounds"); do
	# Alternate the order (ABBA) so that a drift in the machine's load
	# does not always favour the same side of the ratio.
	if [ $((r % 2)) -eq 1 ]; then
		wrkrun healthz "$serve_url" "$duration" "${health[@]}"
		wrkrun repeated "$serve_url" "$duration" "${repeated[@]}"
	else
		wrkrun repeated "$serve_url" "$duration" "${repeated[@]}"
		wrkrun healthz "$serve_url" "$duration" "${health[@]}"
	fi
	# The repeated key right next to a repeated-token run, alternating too.
	if [ $((r % 2)) -eq 1 ]; then
		wrkrun repeated-key "$serve_url" "$duration" "${keyed[@]}"
		wrkrun repeated-tok "$serve_url" "$duration" "${repeated[@]}"
	else
		wrkrun repeated-tok "$serve_url" "$duration" "${repeated[@]}"
		wrkrun repeated-key "$serve_url" "$duration" "${keyed[@]}"
	fi
	wrkrun healthz-padded "$serve_url" "$duration" "${padded[@]}"
	wrkrun anchor "$anchor_url" "$duration" "${repeated[@]}"
	wrkrun first-seen "$serve_url" "$first_duration" BENCH_PATH=/api/v1/user \
		BENCH_TOKENS_FILE="$work/tokens" BENCH_TOKENS_FROM="$used"
	used=$((used + $(tail -1 "$results" | sed -E 's/.*tokens_read=([0-9]+).*/\1/')))
	# The first-seen run's healthz partner: the same short duration.
	wrkrun healthz-short "$serve_url" "$first_duration" "${health[@]}"
done

# --- the gateways ----------------------------------------------------------------
# gwrun NAME URL GATEWAY_PID [VAR=VALUE...]: a wrk run through a gateway (or,
# with GATEWAY_PID empty, at the upstream alone) with the repeated token. It
# records the CPU time per request of the gateway (gw_cpu_us) and of the
# upstream (up_cpu_us), both from /proc/PID/stat, the upstream connections
# accepted per request (upconns, counted by the upstream) and the
# gateway's open connections to the upstream after the run (pool, from
# /proc/PID/fd and /proc/net/tcp).
upconns() { curl -sf "$up_url/_bench/conns"; }
gwrun() {
	local name=$1 url=$2 gw=$3
	shift 3
	local line g0=0 g1=0 u0 u1 k0 k1 n extra=""
	[ -z "$gw" ] || g0=$(cputicks "$gw")
	u0=$(cputicks "$up_pid") k0=$(upconns)
	line=$(env BENCH_PATH=/api/v1/datasets BENCH_HEADER_FILE="$work/header" "$@" "${client_pin[@]}" \
		wrk -t1 -c"$conns" -d"$duration" --latency -s "$here/wrk/bench.lua" "$url" | grep '^RESULT ') ||
		die "wrk $name: no result"
	[ -z "$gw" ] || g1=$(cputicks "$gw")
	u1=$(cputicks "$up_pid") k1=$(upconns)
	n=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")
	if [ -n "$gw" ]; then
		extra=" gw_cpu_us=$(awk -v t=$((g1 - g0)) -v hz="$hz" -v n="$n" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}')"
		extra+=" pool=$("$work/benchtool" conns -pid "$gw" -port "$up_port")"
	fi
	extra+=" up_cpu_us=$(awk -v t=$((u1 - u0)) -v hz="$hz" -v n="$n" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}')"
	extra+=" upconns=$(awk -v k=$((k1 - k0)) -v n="$n" 'BEGIN {printf "%.4f", k / n}')"
	echo "wrk $name ${line#RESULT }$extra" >>"$results"
	say "  $name: ${line#RESULT }$extra"
}
gateways=("upstream|$up_url|" "gateway|$serve_url|$serve_pid" "oauth2-proxy|$o2p_url|$o2p_pid")
# The API-key path through the gateway: the key made above (or
# BENCH_APIKEY_HEADER_FILE's), when the gateway accepts it.
apikey_header=${BENCH_APIKEY_HEADER_FILE:-$work/keyheader}
if curl -sf -H @"$apikey_header" "$serve_url/api/v1/datasets" >/dev/null; then
	gateways+=("gateway-apikey|$serve_url|$serve_pid|BENCH_HEADER_FILE=$apikey_header")
else
	say "bench: the gateway refuses the API key: its path is not measured"
fi
say "bench: warm-up of the gateways"
for g in "${gateways[@]}"; do
	IFS='|' read -r name url gw env1 <<<"$g"
	duration=2s gwrun "$name" "$url" "$gw" ${env1:+"$env1"} >/dev/null 2>&1
done
sed -i '/^wrk \(upstream\|gateway\|gateway-apikey\|oauth2-proxy\) /d' "$results"
say "bench: $rounds rounds of upstream alone / pbench-auth gateway / oauth2-proxy ($duration each), same token"
for r in $(seq "$rounds"); do
	# Rotate the order, so that each takes each place in turn.
	n=${#gateways[@]}
	for i in $(seq 0 $((n - 1))); do
		IFS='|' read -r name url gw env1 <<<"${gateways[$(((i + r) % n))]}"
		gwrun "$name" "$url" "$gw" ${env1:+"$env1"}
	done
done

# --- memory ------------------------------------------------------------------
if [ "$used" -lt "$ntokens" ]; then
	say "bench: sending the other $((ntokens - used)) tokens, each once"
	"${client_pin[@]}" "$work/benchtool" send -url "$serve_url/api/v1/user" -tokens "$work/tokens" -from "$used" >&2
fi
echo "rss serve tokens=$ntokens hwm_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$serve_pid/status") rss_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$serve_pid/status")" >>"$results"

# --- per-token and per-key checks (go test -bench) ---------------------------
# gobench DIR BENCHTIME PATTERN: the package's benchmarks, compiled once and
# run in rounds (each round runs them back to back), on the server's core,
# one goroutine.
gobench() {
	local dir=$1 benchtime=$2 pattern=$3 name r
	name=$(basename "$dir")
	say "bench: go test -bench '$pattern' ./$dir, $rounds rounds"
	go test -c -o "$work/$name.test" "./$dir"
	for r in $(seq "$rounds"); do
		(cd "$dir" && "${server_pin[@]}" "$work/$name.test" -test.run '^$' -test.cpu 1 -test.benchtime "$benchtime" \
			-test.bench "$pattern") >"$work/gobench" || {
			cat "$work/gobench" >&2
			die "go test -bench ./$dir failed"
		}
		grep '^Benchmark' "$work/gobench" | sed 's/^/  /' >&2
		awk '/^Benchmark/ {sub(/-[0-9]+$/, "", $1); print "gobench", $1, "ns_op=" $3}' "$work/gobench" >>"$results"
	done
}
gobench server 500ms 'VerifyFirstSeen|VerifyCached|RSAFloor|Handler'
# API keys: a first-seen key's lookup by hash on an SQLite file and on a
# PostgreSQL the benchmark starts (Debian's postgresql), and a cached key.
gobench server/apikey 2000x 'FirstSeenKey|RepeatedKey'

# --- call vs curl --------------------------------------------------------------
say "bench: pbench-auth call vs curl, $BENCH_CALL_RUNS runs each ($store store)"
callargs=("$here/call.sh" "$serve_url" "$work/pbench-auth" "$work/benchtool" "$store" "$work/hyperfine")
# A failure here is reported in the table (FAIL, not measured), after the rest.
if [ "$store" = keyring ]; then
	scripts/with-keyring.sh "${callargs[@]}" || say "bench: call vs curl under scripts/with-keyring.sh failed (see above)"
else
	"${callargs[@]}" || say "bench: call vs curl failed (see above)"
fi

# --- report --------------------------------------------------------------------
/usr/bin/python3 "$here/report.py" "$results" "$work/hyperfine" "$store" ${BENCH_PLOT:+"$BENCH_PLOT"}
[ -z "${BENCH_PLOT:-}" ] || say "bench: plot of the gateways' req/s written to $BENCH_PLOT"
