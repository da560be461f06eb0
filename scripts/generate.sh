#!/usr/bin/env bash
# Regenerates completions/ (from the binary), the reference pages in docs/
# (cmd/gen-docs, from the same command tree) and the import table of
# docs/architecture.md (scripts/architecture.sh). With --check, fails when the
# committed files differ from what they generate (CI runs it so that they
# never go stale).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
[ "$GOTOOLCHAIN" = local ] && export GOTOOLCHAIN=auto

out=.
if [ "${1:-}" = --check ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
bin=$(mktemp -d)/pbench-auth
go build -o "$bin" ./cmd/pbench-auth
mkdir -p "$out/completions" "$out/docs"
"$bin" completion bash >"$out/completions/pbench-auth.bash"
"$bin" completion zsh >"$out/completions/_pbench-auth"
"$bin" completion fish >"$out/completions/pbench-auth.fish"
"$bin" completion powershell >"$out/completions/pbench-auth.ps1"
go run ./cmd/gen-docs --markdown-dir "$out/docs/reference" --man-dir "$out/docs/man"
rm -rf "$(dirname "$bin")"

if [ "$out" != . ]; then
  stale=0
  for d in completions docs/reference docs/man; do
    if ! diff -r "$d" "$out/$d" >/dev/null 2>&1; then
      echo "stale: $d differs from what the binary generates; run 'make generate' and commit" >&2
      diff -r "$d" "$out/$d" | head -20 >&2 || true
      stale=1
    fi
  done
  scripts/architecture.sh --check || stale=1
  exit $stale
fi
scripts/architecture.sh
