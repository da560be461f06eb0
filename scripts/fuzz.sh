#!/usr/bin/env bash
# Exploratory fuzzing, outside the test gate (`make fuzz`): runs every fuzz
# target of the repository (every `func FuzzXxx` in a _test.go file), one after
# the other, each for FUZZTIME (default 5m), with FUZZPARALLEL workers
# (default 2). `scripts/fuzz.sh FuzzBearer ...` runs only the named targets.
#
# The gate (`make test`) does not fuzz: plain `go test` runs each target's
# committed corpus (testdata/fuzz/<target>/) and its f.Add seeds, so the gate
# is deterministic. A failure here leaves the crashing input under the
# package's testdata/fuzz/<target>/: give it a descriptive name, commit it
# with the fix, and the gate checks it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
[ "$GOTOOLCHAIN" = local ] && export GOTOOLCHAIN=auto
fuzztime="${FUZZTIME:-5m}"
parallel="${FUZZPARALLEL:-2}"

# "dir target" for every fuzz target in the tree.
mapfile -t targets < <(git grep -E '^func Fuzz[A-Za-z0-9_]*\(' -- '*_test.go' |
	sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#./\1 \2#; s#^[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#. \1#' | sort -u)
[ "${#targets[@]}" -gt 0 ] || { echo "no fuzz targets found" >&2; exit 1; }

ran=0
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	if [ "$#" -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then
		continue
	fi
	printf '\n==> fuzz %s %s for %s (-parallel %s)\n' "$pkg" "$name" "$fuzztime" "$parallel" >&2
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -parallel "$parallel" "$pkg"
	ran=$((ran + 1))
done
[ "$ran" -gt 0 ] || { echo "no fuzz target named $*" >&2; exit 1; }
