#!/usr/bin/env bash
# Entrypoint of payrail's local PostgreSQL test image (deploy/images/postgres).
# It reads its arguments and environment the way the official postgres image
# does, as far as payrail's harness and testcontainers' postgres module use
# them:
#
#   - The arguments are a command. When there are none, or the first is an
#     option (-c port=5433 ...), the command is `postgres` with them.
#   - At the first start an empty $PGDATA gets a cluster: superuser
#     $POSTGRES_USER (default postgres) with password $POSTGRES_PASSWORD,
#     database $POSTGRES_DB (default: the user's name), a pg_hba.conf line
#     `host all all all $POSTGRES_HOST_AUTH_METHOD` (default scram-sha-256,
#     which needs the password; `trust` needs none), extra initdb arguments
#     from $POSTGRES_INITDB_ARGS, then the *.sh, *.sql and *.sql.gz files of
#     /docker-entrypoint-initdb.d in name order.
#   - The server runs as the postgres user and listens on every address
#     unless an argument says otherwise (-c listen_addresses=127.0.0.1).
set -Eeuo pipefail
shopt -s nullglob

if [ "$#" -eq 0 ] || [ "${1:0:1}" = - ]; then
  set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
  exec "$@"
fi

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"

# Started as root (the default): give the server its directories, then run
# this script again as postgres, which initdb and postgres insist on.
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

init_cluster() {
  local user="${POSTGRES_USER:-postgres}"
  local db="${POSTGRES_DB:-$user}"
  local method="${POSTGRES_HOST_AUTH_METHOD:-}"
  local password="${POSTGRES_PASSWORD:-}"

  if [ -z "$password" ] && [ "$method" != trust ]; then
    cat >&2 <<'EOF'
Error: the database is not initialised and POSTGRES_PASSWORD is not set.
Give the superuser a password with POSTGRES_PASSWORD, or set
POSTGRES_HOST_AUTH_METHOD=trust to accept every connection without one
(only ever for tests).
EOF
    exit 1
  fi
  method="${method:-scram-sha-256}"

  local -a args=(--username="$user")
  local pwfile=
  if [ -n "$password" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$password" >"$pwfile"
    args+=(--pwfile="$pwfile")
  fi
  # POSTGRES_INITDB_ARGS is split into words on purpose, as in the official
  # image ("--encoding=UTF8 --data-checksums").
  # shellcheck disable=SC2086
  initdb "${args[@]}" ${POSTGRES_INITDB_ARGS:-}
  if [ -n "$pwfile" ]; then rm -f "$pwfile"; fi

  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  printf '\nhost all all all %s\n' "$method" >>"$PGDATA/pg_hba.conf"

  # The setup runs against a private server that listens on the socket
  # only, so no client sees a half-made database.
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p ${PGPORT:-5432}" start

  local -a psql=(psql -X -q -v ON_ERROR_STOP=1 --username "$user" --no-password)
  if [ "$db" != postgres ]; then
    # The name goes in as a psql variable, quoted as an identifier by psql.
    "${psql[@]}" --dbname postgres --set db="$db" <<<'CREATE DATABASE :"db";'
  fi
  local f
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        echo "running $f"
        if [ -x "$f" ]; then "$f"; else
          # shellcheck disable=SC1090
          . "$f"
        fi
        ;;
      *.sql) echo "running $f"; "${psql[@]}" --dbname "$db" -f "$f" ;;
      *.sql.gz) echo "running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$db" ;;
      *) echo "ignoring $f" ;;
    esac
  done

  pg_ctl -D "$PGDATA" -m fast -w stop
  echo 'PostgreSQL init process complete; ready for start up.'
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  init_cluster
fi

exec "$@"
