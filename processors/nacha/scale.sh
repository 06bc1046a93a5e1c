#!/bin/sh
# Scale comparison: payrail nacha drop of an N-entry cutoff (balanced, through
# the store's real ledger) versus building and writing the same shape of file
# with bare moov-io/ach (bare: one shared name and account number, as the
# first comparison did; bare_distinct: every entry its own, as in the seeded
# entries). Each runs in its own process so its peak RSS is its own. Needs PAYRAIL_TEST_DATABASE_URL and PAYRAIL_TEST_NATS_URL.
#   processors/nacha/scale.sh [N]        (default 1000000)
set -eu
N=${1:-1000000}
cd "$(dirname "$0")"
go test -c -o /tmp/payrail-nacha-scale.test . >/dev/null
for mode in bare bare_distinct drop; do
  PAYRAIL_NACHA_SCALE=$N PAYRAIL_NACHA_SCALE_MODE=$mode /tmp/payrail-nacha-scale.test \
    -test.run '^$' -test.bench '^BenchmarkScaleCompare$' -test.benchtime 1x -test.timeout 2h | grep '^SCALE'
done
