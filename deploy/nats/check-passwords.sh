#!/usr/bin/env bash
# Checks that NATS passwords generated the way deploy/.env.example and
# check-local.sh generate them let nats-server start with this directory's
# configurations. nats-server reads $NATS_PASSWORD as a configuration
# value, not a string: a value that looks like a number (all digits, or
# digits then "e" as in 12e45ab…) makes nats-server 2.9 refuse to start, and
# a bare `openssl rand -hex 24` does so about 1 time in 14. The recipe puts
# letters first. Quoting the reference in the file ("$NATS_PASSWORD") does
# not help: a quoted reference is not expanded at all.
#
# Usage: deploy/nats/check-passwords.sh [N]   N passwords (default 50)
# Needs nats-server (Debian's package, or the one on PATH).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
n=${1:-50}
server=$(command -v nats-server || echo /usr/sbin/nats-server)
[ -x "$server" ] || { echo "check-passwords: nats-server is not installed" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# single.conf as compose runs it, and cluster.conf's accounts block (the
# cluster's routes need their TLS files, which a syntax check cannot do
# without), each with the store in the scratch directory.
sed "s#store_dir: /data#store_dir: $tmp/js#" "$here/single.conf" >"$tmp/single.conf"
awk '/^accounts \{/,/^}/' "$here/cluster.conf" >"$tmp/accounts.conf"
printf 'system_account: SYS\n' >>"$tmp/accounts.conf"
grep -q 'password: \$NATS_PASSWORD' "$tmp/accounts.conf" || { echo "check-passwords: cluster.conf has no accounts block with \$NATS_PASSWORD" >&2; exit 1; }

recipe() { printf 'nats%s' "$(openssl rand -hex 24)"; }
bad=0
for _ in $(seq 1 "$n"); do
  NATS_PASSWORD=$(recipe) NATS_SYSTEM_PASSWORD=$(recipe)
  export NATS_PASSWORD NATS_SYSTEM_PASSWORD
  for conf in single accounts; do
    if ! out=$("$server" -t -c "$tmp/$conf.conf" 2>&1) || ! grep -q 'is valid' <<<"$out"; then
      echo "check-passwords: $conf.conf refused NATS_PASSWORD=$NATS_PASSWORD: $out" >&2
      bad=$((bad + 1))
    fi
  done
done
# The check must be able to fail: a password that looks like a number is
# refused by this server, or the premise of the recipe is gone.
if NATS_PASSWORD=12e45abc "$server" -t -c "$tmp/single.conf" >/dev/null 2>&1; then
  echo "check-passwords: note: this nats-server ($("$server" --version)) accepts number-like passwords" >&2
fi
if [ "$bad" -gt 0 ]; then
  echo "check-passwords: $bad of $((2 * n)) configurations refused a generated password" >&2
  exit 1
fi
echo "check-passwords: $n generated passwords accepted by single.conf and cluster.conf's accounts ($("$server" --version))"
