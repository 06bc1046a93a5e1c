#!/bin/sh
# Runs inside the image's root filesystem after the packages are installed.
set -eu

# A version-free path to the server binaries, for PATH in `changes`.
# shellcheck disable=SC2012 # the entries are major versions: 15, 16...
ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
ln -sfn "$ver" /usr/lib/postgresql/current

# The entrypoint drops root with setpriv (util-linux); fail the build, not the
# first container, if it is missing.
command -v setpriv >/dev/null

mkdir -p /var/lib/postgresql/data /var/run/postgresql /docker-entrypoint-initdb.d
chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql
chmod 0700 /var/lib/postgresql/data
chmod 2777 /var/run/postgresql
