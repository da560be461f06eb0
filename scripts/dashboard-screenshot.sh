#!/usr/bin/env bash
# Regenerates docs/dashboard.png: the dashboard logged in as admin on
# `serve --dev`, as the end-to-end test TestDashboardDevBroker drives it in
# headless Chromium (it writes the picture when PBENCH_AUTH_DASHBOARD_SCREENSHOT
# names a file). Needs chromium (scripts/install-deps.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
[ "$GOTOOLCHAIN" = local ] && export GOTOOLCHAIN=auto
out="$PWD/docs/dashboard.png"
PBENCH_AUTH_DASHBOARD_SCREENSHOT="$out" go test -tags e2e -count=1 -run '^TestDashboardDevBroker$' ./test/e2e/
echo "wrote $out" >&2
