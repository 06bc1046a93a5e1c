#!/usr/bin/env bash
# Builds payrail's container image without pulling anything from a
# registry: the binary is compiled on this machine (static, CGO_ENABLED=0)
# and put on an empty (scratch) base with the host's CA certificates and a
# non-root user, by deploy/Dockerfile.prebuilt. Use it where `FROM golang`
# cannot be pulled; with a registry, deploy/Dockerfile builds the same
# layout inside a golang builder.
#
# Usage: deploy/build-image.sh [IMAGE]     default: $PAYRAIL_IMAGE or payrail:local
#
# Environment:
#   GO                 go command (default: go)
#   PAYRAIL_CA_BUNDLE  CA bundle to copy (default: /etc/ssl/certs/ca-certificates.crt)
#   GOARCH             target architecture (default: this machine's)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
image=${1:-${PAYRAIL_IMAGE:-payrail:local}}
ca=${PAYRAIL_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
ctx=$root/deploy/.build

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ -s "$ca" ] || die "no CA bundle at $ca (install ca-certificates or set PAYRAIL_CA_BUNDLE)"
command -v docker >/dev/null || die "docker is not installed"

# A fresh context each time, so nothing stale reaches the image.
rm -rf "$ctx"
mkdir -p "$ctx/etc" "$ctx/var/lib/payrail/nacha/outbound" "$ctx/var/lib/payrail/nacha/inbound"

log "compiling ./cmd/payrail (static)"
# -tags timetzdata embeds the time zone database: the NACHA cutoff calendar
# loads America/New_York and scratch has no /usr/share/zoneinfo.
# The commit and build time are linked in for `payrail version`.
commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || true)
(cd "$root" && CGO_ENABLED=0 "${GO:-go}" build -trimpath -tags timetzdata \
  -ldflags="-s -w -X main.commit=$commit -X main.buildTime=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  -o "$ctx/payrail" ./cmd/payrail)

cp "$ca" "$ctx/ca-certificates.crt"
# The same user distroless's :nonroot images have, so files on volumes
# written by either image belong to one uid.
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$ctx/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$ctx/etc/group"

revision=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
log "building $image (revision $revision)"
docker build -f "$root/deploy/Dockerfile.prebuilt" \
  --label org.opencontainers.image.title=payrail \
  --label org.opencontainers.image.revision="$revision" \
  -t "$image" "$ctx" >&2
printf '%s\n' "$image"
