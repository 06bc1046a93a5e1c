#!/bin/sh
# Scale comparison: payrail nacha drop of an N-entry cutoff (balanced, through
# the store's real ledger) versus building and writing the same shape of file
# with bare moov-io/ach (bare: one shared name and account number, as the
# first comparison did; bare_distinct: every entry its own, as in the seeded
# entries). Each runs in its own process so its peak RSS is its own. The
# drop prints two lines: drop_written (the file durable and recorded: the
# cutoff's critical path) and drop (the entries' rows and events written
# too). Needs PAYRAIL_TEST_DATABASE_URL and PAYRAIL_TEST_NATS_URL.
#   processors/nacha/scale.sh [N]        (default 1000000)
set -eu
N=${1:-1000000}
cd "$(dirname "$0")"
BIN=$(mktemp -d)/payrail-nacha-scale.test
go test -c -o "$BIN" . >/dev/null
for mode in bare bare_distinct drop; do
  echo "SCALE load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  PAYRAIL_NACHA_SCALE=$N PAYRAIL_NACHA_SCALE_MODE=$mode "$BIN" \
    -test.run '^$' -test.bench '^BenchmarkScaleCompare$' -test.benchtime 1x -test.timeout 2h | grep '^SCALE'
done
