#!/usr/bin/env bash
# Checks the Prometheus rules and the Grafana dashboard of
# deploy/observability (deploy/README.md#dashboards-and-alerts):
#
#   1. the dashboard (jq): valid JSON, schemaVersion set, a `datasource`
#      variable that every panel and query uses, unique panel ids, an
#      expression on every query;
#   2. metric names (jq, grep): every payrail_* name in the rules and the
#      dashboard is registered by the Go code (intake, worker, outbox,
#      webhooks, processors, cmd/payrail), or is one of the PLANNED names below and
#      is then used only in alerts-planned.yml or a dashboard panel whose
#      description starts with "PLANNED";
#   3. promtool: `check rules` and `test rules` on the alert files, every
#      dashboard expression parsed as a recording rule, `check config` on
#      the example Prometheus configurations (Debian's promtool is built
#      without Kubernetes service discovery: the Kubernetes example is then
#      skipped with a notice; PROMTOOL=/path/to/promtool picks another).
#
# A missing jq or promtool skips its checks with a notice (exit 0), so
# `make lint` works anywhere; PAYRAIL_OBSERVABILITY_STRICT=1 (.ci/run sets
# it) makes a missing tool an error. Debian: apt-get install jq prometheus.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dash=$here/grafana/payrail.json
prom=$here/prometheus

# Metrics being added and not registered by the code yet (none now; a
# name goes here while its code is on the way).
planned=()

failed=0
skips=0
fail() { echo "observability: FAIL: $*" >&2; failed=1; }
skipped() {
  echo "observability: $1 skipped: $2 is not installed (Debian: apt-get install $3)"
  skips=1
  if [ "${PAYRAIL_OBSERVABILITY_STRICT:-}" = 1 ]; then fail "$2 is required (PAYRAIL_OBSERVABILITY_STRICT=1)"; fi
}
have() { command -v "$1" >/dev/null 2>&1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- 1. dashboard structure ------------------------------------------------
if have jq; then
  if ! jq empty "$dash" 2>"$tmp/jq.err"; then
    fail "$dash is not valid JSON: $(cat "$tmp/jq.err")"
  else
    jq -e '.schemaVersion | type == "number" and . > 0' "$dash" >/dev/null ||
      fail "dashboard: schemaVersion is not set"
    jq -e '[.templating.list[]? | select(.name == "datasource" and .type == "datasource" and .query == "prometheus")] | length == 1' "$dash" >/dev/null ||
      fail 'dashboard: no `datasource` variable of type datasource (query prometheus)'
    # Every panel with queries, rows' nested panels included.
    bad=$(jq -r '.. | objects | select(has("targets"))
      | select(.datasource.uid != "${datasource}"
               or any(.targets[]; (.datasource.uid // "${datasource}") != "${datasource}" or ((.expr // "") == "")))
      | "\(.id) \(.title)"' "$dash")
    [ -z "$bad" ] || fail "dashboard: panels not on \${datasource} or with an empty query: $bad"
    dups=$(jq -r '[.. | objects | select(has("gridPos")) | .id] | group_by(.) | map(select(length > 1) | .[0]) | .[]' "$dash")
    [ -z "$dups" ] || fail "dashboard: duplicate panel ids: $dups"
    echo "observability: dashboard JSON ok ($(jq '[.. | objects | select(has("gridPos"))] | length' "$dash") panels, schemaVersion $(jq .schemaVersion "$dash"))"
  fi
else
  skipped "dashboard and metric-name checks" jq jq
fi

# --- 2. metric names -------------------------------------------------------
if have jq && jq empty "$dash" 2>/dev/null; then
  (cd "$root" && grep -rhoE --include='*.go' --exclude='*_test.go' 'Name: +"payrail_[a-z0-9_]+"' \
    intake worker outbox webhooks processors cmd/payrail) | sed -E 's/.*"(payrail_[a-z0-9_]+)"/\1/' | sort -u >"$tmp/registered"
  printf '%s\n' "${planned[@]}" | sort -u >"$tmp/planned"
  # name, context (planned or not), where
  {
    for f in "$prom"/alerts.yml; do
      grep -oE 'payrail_[a-z0-9_]+' "$f" | sed "s|\$| main $(basename "$f")|"
    done
    grep -oE 'payrail_[a-z0-9_]+' "$prom/alerts-planned.yml" | sed 's|$| planned alerts-planned.yml|'
    jq -r '.. | objects | select(has("targets"))
      | ((.description // "") | startswith("PLANNED")) as $p
      | .id as $id | .targets[] | .expr | scan("payrail_[a-z0-9_]+")
      | "\(.) \(if $p then "planned" else "main" end) dashboard-panel-\($id)"' "$dash"
  } | sort -u >"$tmp/used"
  before=$failed
  failed=0
  while read -r name ctx where; do
    base=$(sed -E 's/_(bucket|sum|count)$//' <<<"$name")
    if grep -qxF "$name" "$tmp/registered" || grep -qxF "$base" "$tmp/registered"; then
      continue
    elif grep -qxF "$name" "$tmp/planned"; then
      [ "$ctx" = planned ] || fail "$where uses the planned metric $name outside a PLANNED panel or alerts-planned.yml"
    else
      fail "$where uses $name, which the code does not register (and is not a planned name)"
    fi
  done <"$tmp/used"
  for p in "${planned[@]}"; do
    if grep -qxF "$p" "$tmp/registered"; then
      echo "observability: note: planned metric $p is registered now; move its panels and alerts out of PLANNED"
    fi
  done
  if [ "$failed" = 0 ]; then
    echo "observability: metric names ok ($(cut -d' ' -f1 "$tmp/used" | sort -u | wc -l) names used, $(wc -l <"$tmp/registered") registered by the code)"
  fi
  [ "$before" = 0 ] || failed=1
fi

# --- 3. promtool -----------------------------------------------------------
PROMTOOL=${PROMTOOL:-promtool}
if have "$PROMTOOL"; then
  run() { echo "+ promtool $*"; "$PROMTOOL" "$@" || { fail "promtool $*"; return 1; }; }
  (cd "$prom" && run check rules alerts.yml alerts-planned.yml) || failed=1
  (cd "$prom" && run test rules alerts_test.yml alerts_cutoff_test.yml alerts-planned_test.yml) || failed=1
  (cd "$prom" && run check config prometheus.compose.example.yml) || failed=1
  echo "+ promtool check config prometheus.kubernetes.example.yml"
  if (cd "$prom" && "$PROMTOOL" check config prometheus.kubernetes.example.yml) >"$tmp/k8s.out" 2>&1; then
    cat "$tmp/k8s.out"
  elif grep -q 'field kubernetes_sd_configs not found' "$tmp/k8s.out"; then
    echo "observability: prometheus.kubernetes.example.yml skipped: this promtool has no Kubernetes service discovery (Debian's build)"
  else
    cat "$tmp/k8s.out" >&2
    fail "promtool check config prometheus.kubernetes.example.yml"
  fi
  if have jq; then
    # Grafana's interval variables become fixed durations; any other
    # variable in an expression is an error promtool will report.
    jq '{groups: [{name: "dashboard", rules: [.. | objects | select(has("targets")) | .id as $id
          | .targets[] | {record: "payrail_dashboard:panel_\($id)_\(.refId)",
                          expr: (.expr | gsub("\\$__rate_interval|\\$\\{__rate_interval\\}"; "1m")
                                       | gsub("\\$__interval|\\$\\{__interval\\}"; "1m")
                                       | gsub("\\$__range|\\$\\{__range\\}"; "6h"))}]}]}' \
      "$dash" >"$tmp/dashboard-rules.json"
    echo "+ promtool check rules <every dashboard expression as a recording rule>"
    "$PROMTOOL" check rules "$tmp/dashboard-rules.json" || fail "a dashboard expression does not parse (record name payrail_dashboard:panel_<id>_<refId>)"
  fi
else
  skipped "promtool checks (check rules, test rules, dashboard expressions)" promtool prometheus
fi

if [ "$failed" != 0 ]; then
  echo "observability: checks failed" >&2
  exit 1
fi
if [ "$skips" != 0 ]; then echo "observability: ok (some checks skipped, see above)"; else echo "observability: ok"; fi
