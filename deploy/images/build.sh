#!/usr/bin/env bash
# Builds the local PostgreSQL and NATS images that payrail's container test
# suite uses on machines that reach no container registry: a Debian root
# filesystem made by debootstrap from the mirror apt already uses, the image's
# Debian packages installed into it, a small entrypoint that follows the
# official image's conventions, and `docker import` to turn it into an image.
#
# Each image is tagged with a hash of its recipe (this script and the image's
# folder), so an unchanged recipe is never built twice and a changed one is
# always rebuilt.
#
# Usage: deploy/images/build.sh [IMAGE...]     IMAGE: postgres, nats (default: both)
#
# Prints one NAME=IMAGE line per image on stdout, for example
#   PAYRAIL_TEST_POSTGRES_IMAGE=localhost/payrail-test-postgres:bookworm-0123456789ab
# and its progress on stderr.
#
# Environment:
#   PAYRAIL_DEBIAN_MIRROR  mirror for debootstrap (default: the one apt's sources use)
#   PAYRAIL_DEBIAN_SUITE   Debian suite (default: this machine's, from /etc/os-release)
#   PAYRAIL_IMAGE_PREFIX   image name prefix (default: localhost/payrail-test-)
#
# An image folder holds:
#   packages       Debian packages to install, one per line (# comments)
#   changes        Dockerfile instructions for `docker import --change`, one per line
#   entrypoint.sh  installed as /usr/local/bin/docker-entrypoint.sh
#   rootfs/        copied over the root filesystem before the packages are installed
#   setup.sh       optional; runs inside the root filesystem after the install
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf 'images: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# shellcheck source=/dev/null # the machine's, not ours
suite=${PAYRAIL_DEBIAN_SUITE:-$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")}
[ -n "$suite" ] || die "cannot tell the Debian suite; set PAYRAIL_DEBIAN_SUITE"
prefix=${PAYRAIL_IMAGE_PREFIX:-localhost/payrail-test-}

# apt_mirror prints the first archive URI that apt's enabled sources use for
# $suite itself (not -updates or -security). debootstrap must go through the
# same mirror apt does: on machines with a closed network it is the only one
# reachable.
apt_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822: stanzas separated by blank lines; want Types: deb, Suites: $suite.
    awk -v suite="$suite" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && enabled != "no" && uri != "") { print uri; found = 1; exit }
        types = ""; suites = ""; uri = ""; enabled = ""
      }
      /^[[:space:]]*$/ { flush(); next }
      /^#/ { next }
      tolower($1) == "types:"   { $1 = ""; types = $0 }
      tolower($1) == "suites:"  { $1 = ""; suites = $0 }
      tolower($1) == "uris:"    { uri = $2 }
      tolower($1) == "enabled:" { enabled = tolower($2) }
      END { if (!found) flush() }
    ' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # One-line format: deb [options] URI SUITE COMPONENT...
    awk -v suite="$suite" '
      $1 != "deb" { next }
      { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } }
      $(i + 1) == suite { print $i; exit }
    ' "$f"
  done
}

# recipe_tag prints the tag for an image: the suite plus a hash of every file
# of its recipe, names included, so any edit gives a new tag.
recipe_tag() {
  local name=$1 sum
  sum=$(cd "$here" && find build.sh "$name" -type f -print0 | LC_ALL=C sort -z |
    xargs -0 sha256sum | { cat; printf 'suite %s\n' "$suite"; } | sha256sum)
  printf '%s-%s' "$suite" "${sum:0:12}"
}

# build_image makes image $2 from recipe folder $1 on top of the base root
# filesystem $3.
build_image() {
  local name=$1 image=$2 base=$3 dir="$here/$1" root="$work/$1"
  local -a packages changes args
  mapfile -t packages < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$dir/packages")
  mapfile -t changes < <(sed -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' "$dir/changes")

  log "building $image"
  cp -a "$base" "$root"
  if [ -d "$dir/rootfs" ]; then cp -a "$dir/rootfs/." "$root/"; fi
  install -m 0755 "$dir/entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"

  # Packages must not start services inside the build root (it shares the
  # host's network, where the same ports are taken).
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"

  # The host's apt accepts Release files past their Valid-Until (its mirror
  # may be a snapshot); the build root's apt must too.
  local -a apt=(apt-get -q -y -o Acquire::Check-Valid-Until=false -o Acquire::Check-Date=false)
  chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C "${apt[@]}" update >&2
  chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C "${apt[@]}" \
    install --no-install-recommends "${packages[@]}" >&2
  if [ -f "$dir/setup.sh" ]; then
    install -m 0755 "$dir/setup.sh" "$root/tmp/setup.sh"
    chroot "$root" env LC_ALL=C /tmp/setup.sh >&2
    rm -f "$root/tmp/setup.sh"
  fi

  # Keep the image small: no package lists, caches, docs or translations.
  # resolv.conf and hostname came from the build host; Docker provides its own.
  chroot "$root" apt-get clean >&2
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/* "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* \
    "$root"/etc/resolv.conf "$root"/etc/hostname

  args=()
  for c in "${changes[@]}"; do args+=(--change "$c"); done
  args+=(--change "LABEL org.payrail.recipe=$image")
  tar -C "$root" --numeric-owner -cf - . |
    docker import "${args[@]}" --message "payrail test image from deploy/images/$name" - "$image" >/dev/null
  rm -rf "$root"
  log "built $image ($(docker image inspect --format '{{.Size}}' "$image" | awk '{ printf "%d MB", $1 / 1e6 }'))"
}

names=("$@")
[ "${#names[@]}" -gt 0 ] || names=(postgres nats)

declare -A image_of
missing=()
for name in "${names[@]}"; do
  [ -f "$here/$name/packages" ] || die "no image recipe $here/$name"
  image_of[$name]="${prefix}${name}:$(recipe_tag "$name")"
  if docker image inspect "${image_of[$name]}" >/dev/null 2>&1; then
    log "${image_of[$name]} is up to date"
  else
    missing+=("$name")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
  [ "$(id -u)" = 0 ] || die "building images needs root (debootstrap and chroot)"
  mirror=${PAYRAIL_DEBIAN_MIRROR:-$(apt_mirror | head -n 1)}
  [ -n "$mirror" ] || die "no apt source for suite $suite found; set PAYRAIL_DEBIAN_MIRROR"

  work=$(mktemp -d "${TMPDIR:-/var/tmp}/payrail-images.XXXXXX")
  trap 'rm -rf "$work"' EXIT

  # One minimal base for all images: debootstrap is the slow part.
  log "debootstrap $suite from $mirror"
  if ! debootstrap --variant=minbase --components=main "$suite" "$work/base" "$mirror" >&2; then
    tail -n 20 "$work/base/debootstrap/debootstrap.log" >&2 || true
    die "debootstrap failed"
  fi

  for name in "${missing[@]}"; do
    build_image "$name" "${image_of[$name]}" "$work/base"
  done
fi

for name in "${names[@]}"; do
  printf 'PAYRAIL_TEST_%s_IMAGE=%s\n' "${name^^}" "${image_of[$name]}"
done
