#!/usr/bin/env bash
# Runs the three-node cluster of this directory on one Linux machine, on
# loopback, to try it out or check a change to the configs. Needs root:
# each node runs in a private mount namespace (unshare -m) where scratch
# directories are bind-mounted over /etc and /var/lib. /etc holds verbatim
# copies of nats-1.conf, nats-2.conf, nats-3.conf and cluster.conf under
# /etc/nats and a throwaway CA and route certificate under /etc/nats/tls;
# /var/lib is the node's own, for /var/lib/nats/jetstream. So the nodes
# read exactly the production files, at their production paths, without
# touching the machine's /etc or /var/lib. Only what cannot be the same on
# one host is given as nats-server flags (they override the files): the
# listen address, ports and route URLs.
#
# Usage:
#   deploy/nats/check-local.sh start [DIR]   start nodes 1-3, wait for a JetStream meta leader
#   deploy/nats/check-local.sh stop [DIR]    stop them and remove DIR
#   deploy/nats/check-local.sh kill N [DIR]  stop node N only (failover check)
#
# DIR defaults to /tmp/payrail-nats-cluster. Node N listens for clients on
# 127.0.0.1:1422N, for routes on 127.0.0.1:1622N and for monitoring on
# 127.0.0.1:1822N. `start` prints the PAYRAIL_NATS_URL to use (with a
# generated password, kept in DIR/secrets.env).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cmd=${1:-}
log() { printf 'nats-cluster: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

pid_of() { cat "$dir/n$1.pid" 2>/dev/null || true; }

stop_node() {
  local pid
  pid=$(pid_of "$1")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    log "node $1 (pid $pid) stopped"
  fi
  rm -f "$dir/n$1.pid"
}

case "$cmd" in
start)
  dir=${2:-/tmp/payrail-nats-cluster}
  [ "$(id -u)" = 0 ] || die "needs root (unshare -m and bind mounts)"
  command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || die "nats-server is not installed"
  server=$(command -v nats-server || echo /usr/sbin/nats-server)
  [ ! -e "$dir" ] || die "$dir exists; run: $0 stop $dir"
  mkdir -p "$dir/etc/nats/tls" "$dir/data"
  chmod 700 "$dir"
  cp "$here"/cluster.conf "$here"/nats-[123].conf "$dir/etc/nats/"
  # The monitoring listener binds 0.0.0.0 in cluster.conf, and the -m flag
  # changes only its port: a wrapper per node includes the production file
  # verbatim and rebinds monitoring to loopback (a later key overrides an
  # included one).
  for n in 1 2 3; do
    printf 'include ./nats-%s.conf\nhttp: 127.0.0.1:1822%s\n' "$n" "$n" >"$dir/etc/nats/local-$n.conf"
  done

  # A throwaway CA and one route certificate for all three nodes, valid for
  # the production names and for 127.0.0.1, which the routes use here.
  tls=$dir/etc/nats/tls
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=payrail-nats-test-ca -keyout "$tls/ca-key.pem" -out "$tls/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj /CN=nats-route -keyout "$tls/route-key.pem" -out "$tls/route.csr" 2>/dev/null
  printf 'subjectAltName=DNS:nats-1,DNS:nats-2,DNS:nats-3,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$tls/ext.cnf"
  openssl x509 -req -in "$tls/route.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca-key.pem" -CAcreateserial \
    -days 2 -extfile "$tls/ext.cnf" -out "$tls/route.pem" 2>/dev/null
  rm -f "$tls/ca-key.pem" "$tls/route.csr" "$tls/ext.cnf" "$tls/ca.srl"

  # Letters first: nats-server parses $NATS_PASSWORD as a configuration
  # value, and a bare hex string that looks like a number (12e45...) stops
  # it from starting (check-passwords.sh).
  NATS_PASSWORD=nats$(openssl rand -hex 16)
  NATS_SYSTEM_PASSWORD=nats$(openssl rand -hex 16)
  export NATS_PASSWORD NATS_SYSTEM_PASSWORD
  umask 077
  printf 'NATS_PASSWORD=%s\nNATS_SYSTEM_PASSWORD=%s\n' "$NATS_PASSWORD" "$NATS_SYSTEM_PASSWORD" >"$dir/secrets.env"

  routes=nats-route://127.0.0.1:16221,nats-route://127.0.0.1:16222,nats-route://127.0.0.1:16223
  for n in 1 2 3; do
    mkdir -p "$dir/data/n$n/nats"
    # setsid: the node outlives this script; its pid file lets stop find it.
    # The inner script is single-quoted on purpose: $1 and $@ are its own.
    # shellcheck disable=SC2016
    setsid unshare --mount --propagation private sh -c '
      mount --bind "$1/etc" /etc && mount --bind "$2" /var/lib && shift 2 && exec "$@"' \
      sh "$dir" "$dir/data/n$n" \
      "$server" -c "/etc/nats/local-$n.conf" \
      -a 127.0.0.1 -p "1422$n" \
      --cluster "nats://127.0.0.1:1622$n" --routes "$routes" \
      -l "$dir/n$n.log" </dev/null >"$dir/n$n.out" 2>&1 &
    echo $! >"$dir/n$n.pid"
  done

  log "waiting for a JetStream meta leader"
  for _ in $(seq 1 60); do
    leader=$(curl -sf http://127.0.0.1:18221/jsz 2>/dev/null | tr -d ' \n' |
      sed -n 's/.*"meta_cluster":{[^}]*"leader":"\([^"]*\)".*/\1/p' || true)
    if [ -n "$leader" ]; then
      log "meta leader: $leader"
      printf 'PAYRAIL_NATS_URL=nats://payrail:%s@127.0.0.1:14221,nats://payrail:%s@127.0.0.1:14222,nats://payrail:%s@127.0.0.1:14223\n' \
        "$NATS_PASSWORD" "$NATS_PASSWORD" "$NATS_PASSWORD"
      exit 0
    fi
    sleep 0.5
  done
  die "no meta leader after 30s; see $dir/n*.log and n*.out"
  ;;
kill)
  n=${2:-}
  dir=${3:-/tmp/payrail-nats-cluster}
  case "$n" in 1|2|3) stop_node "$n" ;; *) die "kill N: N is 1, 2 or 3" ;; esac
  ;;
stop)
  dir=${2:-/tmp/payrail-nats-cluster}
  for n in 1 2 3; do stop_node "$n"; done
  rm -rf "$dir"
  ;;
*)
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
