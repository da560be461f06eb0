#!/usr/bin/env bash
# Builds the container image of `pbench-auth serve` with goreleaser's ko
# builder, with no Docker daemon and no registry but one on loopback:
#
#   1. a static, non-root base image (passwd/group with user 65532 "nonroot",
#      the host's CA certificates, /tmp, /home/nonroot) made offline with
#      go-containerregistry's crane (crane append --oci-empty-base) for
#      linux/amd64 and linux/arm64;
#   2. served by `crane registry serve` on 127.0.0.1:5123, the base_image of
#      goreleaser.yaml's kos entry;
#   3. `goreleaser release` with the GitHub release disabled and every other
#      publisher skipped, so that ko pushes the image to KO_DOCKER_REPO
#      (default: the loopback registry) — from a throw-away clone with a
#      throw-away tag when HEAD is not tagged, and with the archives' builds
#      cut to linux (the image needs no other);
#   4. checks: the image runs as 65532, its entrypoint is the static binary,
#      which runs here and reports this commit.
#
# Usage:
#   scripts/image.sh              build and check the image (CI), on the loopback registry
#   KO_DOCKER_REPO=registry.example.com/pbench-auth scripts/image.sh   the same, pushed there
#   scripts/image.sh --release    serve the base image, then the whole `goreleaser release --clean`
#                                 (a tagged HEAD, GITHUB_TOKEN and KO_DOCKER_REPO's credentials)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
[ "$GOTOOLCHAIN" = local ] && export GOTOOLCHAIN=auto
cache="${PBENCH_AUTH_CACHE:-$HOME/.cache/pbench-auth}"
export PATH="$cache/bin:$PATH"
CRANE_VERSION=v0.22.1
registry=127.0.0.1:5123 # goreleaser.yaml's kos base_image names this address
base=$registry/pbench-auth/base:static
step() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'image.sh: %s\n' "$*" >&2
  exit 1
}

command -v goreleaser >/dev/null || die "goreleaser not found: run scripts/install-deps.sh"
if ! command -v crane >/dev/null; then
  step "go install crane $CRANE_VERSION"
  (cd /tmp && GOBIN="$cache/bin" go install "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION")
fi
[ -r /etc/ssl/certs/ca-certificates.crt ] || die "no /etc/ssl/certs/ca-certificates.crt to put in the image (Debian: apt-get install ca-certificates)"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

step "loopback registry on $registry (crane registry serve)"
crane registry serve --address "$registry" >"$work/registry.log" 2>&1 &
pids+=("$!")
for i in $(seq 100); do
  curl -sf "http://$registry/v2/" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || die "the registry did not start (is $registry in use?): $(cat "$work/registry.log")"
  [ "$i" -lt 100 ] || die "the registry on $registry does not answer"
  sleep 0.1
done

step "base image $base: static, user 65532, CA certificates"
fs=$work/fs
mkdir -p "$fs/etc/ssl/certs" "$fs/tmp" "$fs/home/nonroot"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$fs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$fs/etc/group"
cp /etc/ssl/certs/ca-certificates.crt "$fs/etc/ssl/certs/"
chmod 1777 "$fs/tmp"
# Reproducible: fixed owners and times, sorted names.
tar --sort=name --mtime=@0 --numeric-owner --owner=0 --group=0 -C "$fs" -cf "$work/base.tar" etc tmp
tar --sort=name --mtime=@0 --numeric-owner --owner=65532 --group=65532 -C "$fs" -rf "$work/base.tar" home
images=()
for platform in linux/amd64 linux/arm64; do
  tag=$registry/pbench-auth/base:${platform//\//-}
  crane append --oci-empty-base -f "$work/base.tar" -t "$tag" >>"$work/crane.log" 2>&1 ||
    die "crane append: $(tail -5 "$work/crane.log")"
  crane mutate "$tag" --set-platform "$platform" --user 65532:65532 --workdir /home/nonroot \
    --env HOME=/home/nonroot --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt -t "$tag" >>"$work/crane.log" 2>&1 ||
    die "crane mutate: $(tail -5 "$work/crane.log")"
  images+=(-m "$tag")
done
crane index append "${images[@]}" -t "$base" >>"$work/crane.log" 2>&1 || die "crane index append: $(tail -5 "$work/crane.log")"

if [ "${1:-}" = --release ]; then
  step "goreleaser release --clean, with the base image on $registry"
  goreleaser release --clean
  exit
fi

src=$root
if ! git describe --exact-match --tags HEAD >/dev/null 2>&1; then
  # goreleaser release wants a tag: give a throw-away clone one.
  step "HEAD is not tagged: building from a clone tagged v0.0.0-image"
  git clone -q "$root" "$work/src"
  git -C "$work/src" tag v0.0.0-image
  src=$work/src
fi
export KO_DOCKER_REPO=${KO_DOCKER_REPO:-$registry/pbench-auth}
step "goreleaser release: ko builds and pushes the image to $KO_DOCKER_REPO"
sed 's/^    goos: \[linux, darwin, windows\]$/    goos: [linux]/' "$root/goreleaser.yaml" >"$work/goreleaser.yaml"
grep -q '^    goos: \[linux\]$' "$work/goreleaser.yaml" || die "goreleaser.yaml's goos line changed: update image.sh"
(cd "$src" && PBENCH_AUTH_IMAGE_ONLY=1 goreleaser release --clean --config "$work/goreleaser.yaml" \
  --skip=announce,archive,nfpm,sbom,sign,validate,before) >"$work/goreleaser.log" 2>&1 ||
  { tail -40 "$work/goreleaser.log" >&2; die "goreleaser release failed"; }

tag=$(git -C "$src" describe --tags --abbrev=0 | sed 's/^v//')
image=$KO_DOCKER_REPO:$tag
step "checks of $image"
cfg=$(crane config --platform linux/amd64 "$image")
echo "$cfg" | grep -q '"User":"65532:65532"' || die "the image does not run as 65532: $cfg"
echo "$cfg" | grep -q '"Entrypoint":\["/ko-app/pbench-auth"\]' || die "unexpected entrypoint: $cfg"
# ko writes the binary as /ko-app/pbench-auth (tar drops the leading /).
crane export --platform linux/amd64 "$image" - | tar -x -C "$work" --wildcards '*ko-app/pbench-auth' ||
  die "no /ko-app/pbench-auth in $image"
if command -v file >/dev/null; then
  file "$work/ko-app/pbench-auth" | grep -q 'statically linked' || die "the binary is not static: $(file "$work/ko-app/pbench-auth")"
fi
if [ "$(uname -m)" = x86_64 ]; then
  v=$("$work/ko-app/pbench-auth" version --json)
  grep -q "\"commit\": \"$(git -C "$src" rev-parse HEAD)\"" <<<"$v" || die "the image's binary is not this commit: $v"
fi
echo "image $image: OK (user 65532, static /ko-app/pbench-auth, linux/amd64 and linux/arm64)"
