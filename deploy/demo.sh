#!/usr/bin/env bash
# The demo tour (the README's first command runs it through deploy/run.sh):
#
#   1. a redis-server of its own (the shipped config, a free port, data and
#      log under the run directory), and a PostgreSQL server of its own for
#      the ledger (deploy/postgres/pg-local.sh: initdb under the run
#      directory, a free loopback port), migrated by medsettle-ledger, with
#      the shipper (medsettle-ledger ship) moving every settlement into it,
#   2. a synthetic population, pseudonymised and loaded as a snapshot,
#   3. a development PKI (deploy/pki/make-dev-pki.sh: a CA, the gateway's
#      certificate, one certificate per demo institution) under the run
#      directory, and medsettle-gateway on a free loopback port serving
#      mutual TLS with it,
#   4. a tour with medsettle-cli, each call with the calling institution's
#      certificate: coverage, a trial and a real inpatient
#      discharge, a community outpatient visit, a pharmacy purchase paid
#      by scanning the patient's e-insurance code (issued and drawn as a QR
#      code by medsettle-voucher with a development issuer key; scanning it
#      twice is refused), a replayed request, a reversal, the day's
#      reconciliation, an institution suspended and reinstated,
#   5. the ledger: the day's settlements and reconciliation read from
#      PostgreSQL in the national platform's terms (3201/3202), the
#      shipper's status, every settlement recomputed from its record with
#      the stored rules, Redis verified against the ledger,
#   6. then it leaves the gateway serving until Ctrl-C, printing how to call it.
#
# usage: bash deploy/demo.sh BUILD_DIR
# Environment: MEDSETTLE_RUN_DIR (default run/demo under the checkout),
# MEDSETTLE_DEMO_PERSONS (default 20000), MEDSETTLE_DEMO_SERVE=0 to stop
# after the tour instead of serving (used by the CTest smoke test).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:?usage: bash deploy/demo.sh BUILD_DIR}"
build="$(cd "$build" && pwd)"
run_dir="${MEDSETTLE_RUN_DIR:-$here/run/demo}"
persons="${MEDSETTLE_DEMO_PERSONS:-20000}"
serve="${MEDSETTLE_DEMO_SERVE:-1}"

gateway_bin="$build/gateway/medsettle-gateway"
cli_bin="$build/tools/cli/medsettle-cli"
snapshot_bin="$build/tools/snapshot/medsettle-snapshot"
voucher_bin="$build/tools/voucher/medsettle-voucher"
ledger_bin="$build/tools/ledger/medsettle-ledger"
for b in "$gateway_bin" "$cli_bin" "$snapshot_bin" "$voucher_bin" "$ledger_bin"; do
  [ -x "$b" ] || { echo "demo: $b is not built" >&2; exit 1; }
done

# free_port, step, start_redis
. "$here/deploy/local-servers.sh"

# Fresh demo data every run: the tour's settlements start from a clean year.
rm -rf "$run_dir"
mkdir -p "$run_dir/redis"
redis_pid=""
gateway_pid=""
shipper_pid=""
pg_dir="$run_dir/pg"
cleanup() {
  [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null && wait "$gateway_pid" 2>/dev/null
  [ -n "$shipper_pid" ] && kill "$shipper_pid" 2>/dev/null && wait "$shipper_pid" 2>/dev/null
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  [ -f "$pg_dir/port" ] && bash "$here/deploy/postgres/pg-local.sh" stop "$pg_dir" >/dev/null 2>&1
  true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "1. Redis (deploy/redis/medsettle-redis.conf: AOF, appendfsync always)"
start_redis "$here" "$run_dir" demo
echo "redis-server on 127.0.0.1:$redis_port, data in $run_dir/redis"

step "1b. The ledger: PostgreSQL of its own (deploy/postgres/pg-local.sh), migrated; the shipper"
ledger=$(bash "$here/deploy/postgres/pg-local.sh" start "$pg_dir" | tail -n 1)
export MEDSETTLE_LEDGER="$ledger"
"$ledger_bin" migrate
# The shipper moves the journal of every tag into the ledger exactly once;
# a shipped settlement stays in Redis for the hot window (7 days), then only
# the ledger has it.
shipper_metrics_port=$(free_port 9465)
"$ledger_bin" ship --redis "127.0.0.1:$redis_port" --report-seconds 0 \
  --metrics-listen "127.0.0.1:$shipper_metrics_port" >"$run_dir/shipper.log" 2>&1 &
shipper_pid=$!
echo "PostgreSQL: $ledger (data in $pg_dir); shipper log $run_dir/shipper.log"
echo "shipper metrics: http://127.0.0.1:$shipper_metrics_port/metrics"

step "2. Enrollment snapshot: $persons synthetic persons and 36 institutions"
head -c 32 /dev/urandom > "$run_dir/person-key"
chmod 600 "$run_dir/person-key"
"$snapshot_bin" synth --persons "$persons" --seed 7 --out "$run_dir/persons.csv" \
  --institutions-out "$run_dir/institutions.csv"
"$snapshot_bin" load --persons "$run_dir/persons.csv" --institutions "$run_dir/institutions.csv" \
  --key-file "$run_dir/person-key" --redis "127.0.0.1:$redis_port"

# Pick tour patients from the CSV: active adults of the region-year, paid in
# the concentrated period (no waiting period), voucher never reported lost.
# Columns: id_number,year,region_code,birth_date,category,tier,assistance,
# paid_date,concentrated,newborn,reenrolled_after_gap,status,...
pick() {  # pick YEAR REGION [NTH]
  awk -F, -v y="$1" -v r="$2" -v n="${3:-1}" \
    'NR > 1 && $2 == y && $3 == r && $5 == "ADULT" && $7 == "NONE" && $9 == 1 && $11 == 0 &&
     $12 == "ACTIVE" && $19 == "" { if (++k == n) { print $1; exit } }' "$run_dir/persons.csv"
}
inpatient_id=$(pick 2025 330800 1)
pharmacy_id=$(pick 2025 330800 2)
community_id=$(pick 2025 330213 1)
for v in inpatient_id pharmacy_id community_id; do
  [ -n "${!v}" ] || { echo "demo: no suitable $v in the synthetic population" >&2; exit 1; }
done
mask() { echo "${1:0:4}**********${1: -4}"; }

hospital=H3308000002   # Quzhou, level-3 hospital
community=C3302130003  # Fenghua, community health centre
pharmacy=P3308000007   # Quzhou, designated pharmacy

step "3. Mutual TLS: a development PKI, and medsettle-gateway"
# Keys stay under the run directory (git-ignored), mode 0600; never commit them.
pki="$run_dir/pki"
bash "$here/deploy/pki/make-dev-pki.sh" "$pki"
# The voucher platform's development signing key: the private half stays
# with the "platform" (medsettle-voucher), only the public half goes to the
# gateway's issuer key folder.
"$voucher_bin" keygen --kid demo-vp-1 --out "$run_dir/voucher-platform" >/dev/null
mkdir -p "$run_dir/issuer-keys"
cp "$run_dir/voucher-platform/demo-vp-1.pub.pem" "$run_dir/issuer-keys/"
echo "voucher platform key demo-vp-1: private in $run_dir/voucher-platform, public in $run_dir/issuer-keys"
gateway_port=$(free_port 50051)
metrics_port=$(free_port 9464)
"$gateway_bin" --listen "127.0.0.1:$gateway_port" --redis "127.0.0.1:$redis_port" \
  --metrics-listen "127.0.0.1:$metrics_port" \
  --key-file "$run_dir/person-key" \
  --tls-cert "$pki/server.pem" --tls-key "$pki/server.key.pem" --tls-client-ca "$pki/ca.pem" \
  --tls-crl-dir "$pki/crl" --ec-issuer-keys "$run_dir/issuer-keys" --ledger "$ledger" \
  >"$run_dir/gateway.log" 2>&1 &
gateway_pid=$!
# Every call below trusts the demo CA for the gateway's certificate and
# presents the calling institution's certificate (which names it).
export MEDSETTLE_TARGET="127.0.0.1:$gateway_port" MEDSETTLE_CA="$pki/ca.pem"
for _ in $(seq 1 100); do
  "$cli_bin" --cert "$pki/$hospital.pem" --key "$pki/$hospital.key.pem" health >/dev/null 2>&1 &&
    break
  kill -0 "$gateway_pid" 2>/dev/null || { cat "$run_dir/gateway.log" >&2; exit 1; }
  sleep 0.1
done
"$cli_bin" --cert "$pki/$hospital.pem" --key "$pki/$hospital.key.pem" health
grep -E '^medsettle-gateway: (listening|mutual TLS)' "$run_dir/gateway.log"
echo "gateway metrics: http://127.0.0.1:$metrics_port/metrics (Prometheus text; /healthz too);"
echo "its JSON log lines (refusals, failures, state changes) are in $run_dir/gateway.log"
echo "Every medsettle-cli call below trusts the demo CA (MEDSETTLE_CA=$pki/ca.pem) and"
echo "presents the calling institution's certificate and key (--cert, --key)."

cli() {  # cli INSTITUTION ARGS...: print the command, then run it
  local inst=$1
  shift
  echo "\$ medsettle-cli --cert pki/$inst.pem --key pki/$inst.key.pem $*" |
    sed -E -e 's/([0-9]{4})[0-9]{10}([0-9]{3}[0-9X])/\1**********\2/g' \
      -e 's/(EC1\.[A-Za-z0-9_-]{8})[A-Za-z0-9_.-]*/\1…/g'
  "$cli_bin" --cert "$pki/$inst.pem" --key "$pki/$inst.key.pem" "$@"
}
examples="$here/tools/cli/examples"

refused() {  # refused REASON INSTITUTION ARGS...: the call must fail with REASON
  local why=$1 out
  shift
  if out=$(cli "$@" 2>&1); then
    echo "$out"
    echo "demo: expected $why, but the call succeeded" >&2
    exit 1
  fi
  echo "$out"
  echo "$out" | grep -q "$why" || { echo "demo: expected $why" >&2; exit 1; }
}

step "4a. Coverage check at the hospital (patient $(mask "$inpatient_id"))"
cli "$hospital" coverage --id-card "$inpatient_id" --date 2025-03-10 --visit-type inpatient

step "4b. Trial settlement of the inpatient discharge bill (预结算: nothing recorded)"
cli "$hospital" presettle --request "$examples/quzhou-2025-inpatient-discharge.json" \
  --id-card "$inpatient_id" --request-id demo-discharge-1

step "4c. The real discharge settlement (结算: recorded once)"
settle_out=$(cli "$hospital" settle --request "$examples/quzhou-2025-inpatient-discharge.json" \
  --id-card "$inpatient_id" --request-id demo-discharge-1)
echo "$settle_out"
settlement_id=$(echo "$settle_out" | sed -nE 's/^结算 settlement ([^ ]+) .*/\1/p')
[ -n "$settlement_id" ] || { echo "demo: the settlement failed" >&2; exit 1; }

step "4d. An outpatient visit at a community health centre (Fenghua)"
cli "$community" settle --request "$examples/fenghua-2025-community-outpatient.json" \
  --id-card "$community_id" --request-id demo-community-1

step "4e. A pharmacy purchase paid with the patient's e-insurance code (医保电子凭证)"
echo "The voucher platform shows the code on the patient's phone (patient $(mask "$pharmacy_id");"
echo "medsettle-voucher with the demo key; valid 5 minutes, pharmacy scope):"
"$voucher_bin" issue --signing-key "$run_dir/voucher-platform/demo-vp-1.key.pem" \
  --id-card "$pharmacy_id" --key-file "$run_dir/person-key" --scope pharmacy --minutes 5 \
  --qr >"$run_dir/code.txt"
head -n -1 "$run_dir/code.txt"
token=$(tail -n 1 "$run_dir/code.txt")
echo "The pharmacy's POS scans it and settles (no ID number travels):"
cli "$pharmacy" settle --request "$examples/quzhou-2025-pharmacy-purchase.json" \
  --ec-token "$token" --request-id demo-pharmacy-1
echo "Scanning the same code again for another purchase is refused (each code settles once):"
refused EC_TOKEN_REPLAYED "$pharmacy" settle \
  --request "$examples/quzhou-2025-pharmacy-purchase.json" --ec-token "$token" \
  --request-id demo-pharmacy-2

step "4f. The HIS retries the discharge (same request id, same bill): the stored result, replayed"
cli "$hospital" settle --request "$examples/quzhou-2025-inpatient-discharge.json" \
  --id-card "$inpatient_id" --request-id demo-discharge-1

step "4g. The bill was wrong: reverse it (冲正), and the year's totals are restored"
cli "$hospital" reverse --settlement-id "$settlement_id" --request-id demo-discharge-1-undo \
  --reason "wrong bill"
cli "$hospital" coverage --id-card "$inpatient_id" --date 2025-03-18 --visit-type inpatient

step "4h. The hospital's reconciliation for the discharge day (对账)"
cli "$hospital" reconcile --date 2025-03-17 --detail

step "4i. The bureau suspends the pharmacy (暂停医保服务) without a snapshot load, then reinstates it"
# Every gateway re-reads the registry within snapshot_refresh_ms (≤ 500 ms):
# wait until this one answers a coverage question with the suspension.
registry_says() {  # registry_says WORD: poll the pharmacy's coverage answer for WORD (≤ 10 s)
  for _ in $(seq 1 40); do
    "$cli_bin" --cert "$pki/$pharmacy.pem" --key "$pki/$pharmacy.key.pem" coverage \
      --id-card "$pharmacy_id" --date 2025-08-22 2>&1 | grep -q "$1" && return 0
    sleep 0.25
  done
  echo "demo: the gateway did not apply the institution delta ($1)" >&2
  return 1
}
"$snapshot_bin" delta suspend-institution --institution "$pharmacy" --redis "127.0.0.1:$redis_port"
registry_says INSTITUTION_SUSPENDED
refused INSTITUTION_SUSPENDED "$pharmacy" settle \
  --request "$examples/quzhou-2025-pharmacy-purchase.json" --id-card "$pharmacy_id" \
  --request-id demo-pharmacy-3
"$snapshot_bin" delta reinstate-institution --institution "$pharmacy" --redis "127.0.0.1:$redis_port"
registry_says "covered  *yes"
cli "$pharmacy" settle --request "$examples/quzhou-2025-pharmacy-purchase.json" \
  --id-card "$pharmacy_id" --request-id demo-pharmacy-3

step "5. The ledger (PostgreSQL, the system of record): what the shipper moved there"
# Wait until the shipper has caught up (every journal empty), then read the ledger.
for _ in $(seq 1 100); do
  "$ledger_bin" status --redis "127.0.0.1:$redis_port" --json | grep -q '"waiting":0,' && break
  sleep 0.1
done
"$ledger_bin" status --redis "127.0.0.1:$redis_port"
echo
echo "The hospital's discharge day, from the ledger, as the national platform reconciles it"
echo "(3201 totals per clearing type, refunds included; 3202 one line per settlement and refund):"
"$ledger_bin" reconcile --institution "$hospital" --date 2025-03-17
echo
echo "The pharmacy's day (2025-08-22), from the ledger:"
"$ledger_bin" reconcile --institution "$pharmacy" --date 2025-08-22
echo
echo "Every settlement of 2025 recomputed from its ledger record with the rules it was settled under:"
"$ledger_bin" recompute --from 2025-01-01 --to 2025-12-31
echo "Redis's accumulators and reconcile index against the ledger:"
"$ledger_bin" verify --redis "127.0.0.1:$redis_port"

step "6. What operations see: the gateway's Prometheus metrics and its JSON log lines"
http_get() {  # http_get PORT PATH: the body of a GET (bash's /dev/tcp; no curl needed)
  exec 3<>"/dev/tcp/127.0.0.1/$1"
  printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3
  sed '1,/^\r$/d' <&3
  exec 3<&-
}
echo "\$ curl -s http://127.0.0.1:$metrics_port/metrics | grep -E '^(medsettle_settlements_total|medsettle_refusals_total|grpc_server_handled_total.*Settle.*OK|medsettle_ledger_shipping)'"
http_get "$metrics_port" /metrics |
  grep -E '^(medsettle_settlements_total|medsettle_refusals_total|grpc_server_handled_total.*Settle.*"OK"|medsettle_ledger_shipping)' |
  grep -v ' 0$' || true
echo "\$ grep call_refused run/demo/gateway.log | head -3"
grep '"event":"call_refused"' "$run_dir/gateway.log" | head -3 || true

if [ "$serve" = 0 ]; then
  step "Tour complete (MEDSETTLE_DEMO_SERVE=0): stopping"
  exit 0
fi

step "The gateway keeps serving mutual TLS on 127.0.0.1:$gateway_port. Try it:"
cat <<EOF
  # The demo CA, and the level-3 hospital's certificate: it names the institution.
  export MEDSETTLE_TARGET=127.0.0.1:$gateway_port MEDSETTLE_CA=$pki/ca.pem
  export MEDSETTLE_CERT=$pki/$hospital.pem MEDSETTLE_KEY=$pki/$hospital.key.pem
  ID=$inpatient_id   # or another id_number of a 2025 Quzhou enrollee in $run_dir/persons.csv
  $cli_bin coverage --id-card \$ID --date 2025-05-06
  $cli_bin presettle --request $examples/quzhou-2025-inpatient-discharge.json --id-card \$ID
  $cli_bin settle --visit-type general --id-card \$ID --date 2025-05-06 --item FA0001:1:10.00
  $cli_bin reconcile --date 2025-03-17 --detail
An e-insurance code for the same patient (then settle at the pharmacy with --ec-token,
presenting $pki/$pharmacy.pem and its key):
  $voucher_bin issue --signing-key $run_dir/voucher-platform/demo-vp-1.key.pem \\
    --id-card \$ID --key-file $run_dir/person-key --scope pharmacy --qr
Other institutions: their certificates are in $pki (<id>.pem, <id>.key.pem;
more with: bash $here/deploy/pki/make-dev-pki.sh $pki ID...), the registry in
$run_dir/institutions.csv. Gateway log: $run_dir/gateway.log
grpcurl works too (reflection is on):
  grpcurl -cacert $pki/ca.pem -cert $pki/$hospital.pem -key $pki/$hospital.key.pem 127.0.0.1:$gateway_port list
The ledger (PostgreSQL): export MEDSETTLE_LEDGER="$ledger"
  $ledger_bin status --redis 127.0.0.1:$redis_port
  $ledger_bin reconcile --institution $hospital --date 2025-03-17 --format json
  psql "$ledger" -c 'select settlement_id, institution_id, settlement_date, total_cents from ledger.settlements'
Press Ctrl-C to stop the gateway, the shipper, Redis and PostgreSQL.
EOF
wait "$gateway_pid"
