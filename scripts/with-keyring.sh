#!/usr/bin/env bash
# with-keyring.sh CMD [ARGS...]
#
# Runs CMD with a real, unlocked Secret Service: a private D-Bus session bus
# (dbus-run-session) with gnome-keyring-daemon serving org.freedesktop.secrets,
# under a throw-away HOME and XDG directories, so nothing touches the user's
# own keyring. Works as root with no terminal and no stdin (CI). CMD sees
# PBENCH_AUTH_TEST_KEYRING=1, which turns the keyring tests on.
#
# Needs: dbus (dbus-run-session, dbus-send), gnome-keyring.
# The exit status is CMD's; 1 (with a message) if the keyring does not start.
set -euo pipefail

if [ $# -eq 0 ]; then
	echo "usage: $0 CMD [ARGS...]" >&2
	exit 2
fi
for tool in dbus-run-session dbus-send gnome-keyring-daemon; do
	command -v "$tool" >/dev/null || {
		echo "with-keyring: $tool not found: install dbus and gnome-keyring (apt-get install dbus gnome-keyring)" >&2
		exit 1
	}
done

scratch=$(mktemp -d "${TMPDIR:-/tmp}/pbench-auth-keyring.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/home" "$scratch/config" "$scratch/data" "$scratch/cache" "$scratch/runtime"
chmod 0700 "$scratch/runtime"

# Go keeps its settings (go env -w) and caches under the real HOME: keep
# using them, so the command neither loses GOTOOLCHAIN=auto nor rebuilds
# everything.
if command -v go >/dev/null; then
	for v in GOENV GOPATH GOCACHE GOMODCACHE; do
		export "$v=${!v:-$(go env "$v")}"
	done
fi
export HOME="$scratch/home"
export XDG_CONFIG_HOME="$scratch/config" XDG_DATA_HOME="$scratch/data" XDG_CACHE_HOME="$scratch/cache"
export XDG_RUNTIME_DIR="$scratch/runtime"
export PBENCH_AUTH_TEST_KEYRING=1

# Inside the session: start the daemon with the login keyring's password on
# its stdin (--unlock creates the keyring on first use), then wait — bounded —
# until it owns org.freedesktop.secrets. Without the wait, the first keyring
# call races the daemon's start and about half the runs hang or fail.
# shellcheck disable=SC2016 # expanded by the inner shell
inner='
set -euo pipefail
printf %s "pbench-auth-test" | gnome-keyring-daemon --unlock --components=secrets --daemonize >/dev/null
for _ in $(seq 1 100); do
	if dbus-send --session --dest=org.freedesktop.DBus --print-reply \
		/org/freedesktop/DBus org.freedesktop.DBus.NameHasOwner \
		string:org.freedesktop.secrets 2>/dev/null | grep -q "boolean true"; then
		exec "$@" </dev/null
	fi
	sleep 0.1
done
echo "with-keyring: gnome-keyring-daemon did not take org.freedesktop.secrets within 10s" >&2
exit 1
'
dbus-run-session -- bash -c "$inner" with-keyring "$@"
