#!/usr/bin/env bash
# A short load test of the gateway with its reports, for operators (the
# README's "Load testing"; `bash deploy/run.sh load` builds and runs it):
#
#   1. a redis-server of its own (the shipped config, a free loopback port,
#      data and log under the run directory; no PostgreSQL: the ledger is
#      not on the settlement path),
#   2. a synthetic population (medsettle-snapshot synth), pseudonymised and
#      loaded as a snapshot,
#   3. a development PKI (deploy/pki/make-dev-pki.sh: the CA, the gateway's
#      certificate, the demo institutions' certificates) and a development
#      voucher platform key (medsettle-voucher keygen),
#   4. medsettle-gateway on a free loopback port, mutual TLS, no per-
#      institution rate limit (a load test measures the gateway, not the
#      bucket), and the echo floor (medsettle-loadgen serve-echo) with the
#      same certificate and client CA on another,
#   5. the disk floor of Redis's directory (medsettle-loadgen disk-floor,
#      3 s: append + fdatasync, the wait `appendfsync always` adds to every
#      Settle; a slow disk shows here, not as a slow gateway), then
#      medsettle-loadgen in paired mode: rounds of echo and of Settle with
#      the mix scenario (pharmacy purchases paid by e-insurance code,
#      outpatient visits, inpatient discharges), as every institution the
#      PKI has a certificate for,
#   6. the reports: run/loadtest/report.html and report.json; then it stops
#      everything it started.
#
# usage: bash deploy/loadtest.sh BUILD_DIR
# Environment: MEDSETTLE_RUN_DIR (default run/loadtest under the checkout),
# MEDSETTLE_LOADTEST_PERSONS (default 20000), MEDSETTLE_LOADTEST_PAIRS
# (default 5), MEDSETTLE_LOADTEST_ROUND (seconds per round, default 5),
# MEDSETTLE_LOADTEST_CONCURRENCY (closed loop, default 32), or
# MEDSETTLE_LOADTEST_RATE (calls/s: open loop instead), MEDSETTLE_LOADTEST_SEED (1).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:?usage: bash deploy/loadtest.sh BUILD_DIR}"
build="$(cd "$build" && pwd)"
run_dir="${MEDSETTLE_RUN_DIR:-$here/run/loadtest}"
persons="${MEDSETTLE_LOADTEST_PERSONS:-20000}"
pairs="${MEDSETTLE_LOADTEST_PAIRS:-5}"
round="${MEDSETTLE_LOADTEST_ROUND:-5}"
concurrency="${MEDSETTLE_LOADTEST_CONCURRENCY:-32}"
rate="${MEDSETTLE_LOADTEST_RATE:-}"
seed="${MEDSETTLE_LOADTEST_SEED:-1}"

gateway_bin="$build/gateway/medsettle-gateway"
snapshot_bin="$build/tools/snapshot/medsettle-snapshot"
voucher_bin="$build/tools/voucher/medsettle-voucher"
loadgen_bin="$build/tools/loadgen/medsettle-loadgen"
for b in "$gateway_bin" "$snapshot_bin" "$voucher_bin" "$loadgen_bin"; do
  [ -x "$b" ] || { echo "loadtest: $b is not built" >&2; exit 1; }
done

# free_port, step, start_redis
. "$here/deploy/local-servers.sh"

rm -rf "$run_dir"
mkdir -p "$run_dir/redis"
redis_pid=""
gateway_pid=""
echo_pid=""
cleanup() {
  [ -n "$echo_pid" ] && kill "$echo_pid" 2>/dev/null && wait "$echo_pid" 2>/dev/null
  [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null && wait "$gateway_pid" 2>/dev/null
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "1. Redis (deploy/redis/medsettle-redis.conf)"
start_redis "$here" "$run_dir" loadtest
echo "redis-server on 127.0.0.1:$redis_port"

step "2. Enrollment snapshot: $persons synthetic persons and 36 institutions"
head -c 32 /dev/urandom > "$run_dir/person-key"
chmod 600 "$run_dir/person-key"
"$snapshot_bin" synth --persons "$persons" --seed 7 --out "$run_dir/persons.csv" \
  --institutions-out "$run_dir/institutions.csv"
"$snapshot_bin" load --persons "$run_dir/persons.csv" --institutions "$run_dir/institutions.csv" \
  --key-file "$run_dir/person-key" --redis "127.0.0.1:$redis_port" 2>/dev/null

step "3. Development PKI and voucher platform key"
pki="$run_dir/pki"
bash "$here/deploy/pki/make-dev-pki.sh" "$pki" >/dev/null
"$voucher_bin" keygen --kid load-vp-1 --out "$run_dir/voucher-platform" >/dev/null
mkdir -p "$run_dir/issuer-keys"
cp "$run_dir/voucher-platform/load-vp-1.pub.pem" "$run_dir/issuer-keys/"
echo "certificates in $pki: $(cd "$pki" && ls ./*.key.pem | grep -v server | sed 's|./||; s|.key.pem||' | tr '\n' ' ')"

step "4. medsettle-gateway (mutual TLS, no rate limit) and the echo floor"
# The shipped configuration, without the per-institution rate limit.
sed -E 's/^(  requests_per_second:) [0-9]+/\1 0/' "$here/deploy/gateway/medsettle-gateway.yaml" \
  > "$run_dir/gateway.yaml"
gateway_port=$(free_port 50051)
"$gateway_bin" --config "$run_dir/gateway.yaml" --listen "127.0.0.1:$gateway_port" \
  --redis "127.0.0.1:$redis_port" --key-file "$run_dir/person-key" \
  --tls-cert "$pki/server.pem" --tls-key "$pki/server.key.pem" --tls-client-ca "$pki/ca.pem" \
  --ec-issuer-keys "$run_dir/issuer-keys" >"$run_dir/gateway.log" 2>&1 &
gateway_pid=$!
echo_port=$(free_port $((gateway_port + 1)))
"$loadgen_bin" serve-echo --listen "127.0.0.1:$echo_port" --tls-cert "$pki/server.pem" \
  --tls-key "$pki/server.key.pem" --tls-client-ca "$pki/ca.pem" >"$run_dir/echo.log" 2>&1 &
echo_pid=$!
for _ in $(seq 1 100); do
  grep -q '^medsettle-gateway: listening' "$run_dir/gateway.log" 2>/dev/null && break
  kill -0 "$gateway_pid" 2>/dev/null || { cat "$run_dir/gateway.log" >&2; exit 1; }
  sleep 0.1
done
grep -E '^medsettle-gateway: (listening|mutual TLS)' "$run_dir/gateway.log" || true
sleep 0.3
kill -0 "$echo_pid" 2>/dev/null || { cat "$run_dir/echo.log" >&2; exit 1; }
cat "$run_dir/echo.log"

step "5. The disk floor under Redis, then $pairs pairs of ${round} s rounds, echo then Settle (mix)"
"$loadgen_bin" disk-floor --dir "$run_dir/redis" --duration 3 --json "$run_dir/disk-floor.json" |
  tee "$run_dir/disk-floor.txt"
if [ -n "$rate" ]; then shape=(--rate "$rate"); else shape=(--concurrency "$concurrency"); fi
loadgen_args=(--target "127.0.0.1:$gateway_port" --floor-target "127.0.0.1:$echo_port"
  --floor-pairs "$pairs" --floor-round "$round" "${shape[@]}" --seed "$seed"
  --ca "$pki/ca.pem" --cert-dir "$pki"
  --persons "$run_dir/persons.csv" --institutions "$run_dir/institutions.csv"
  --voucher-key "$run_dir/voucher-platform/load-vp-1.key.pem" --key-file "$run_dir/person-key"
  --scenario mix --json "$run_dir/report.json" --html "$run_dir/report.html")
echo "\$ medsettle-loadgen ${loadgen_args[*]}" | sed "s|$here/||g"
"$loadgen_bin" "${loadgen_args[@]}" | tee "$run_dir/summary.txt"

step "6. Reports"
echo "HTML report: $run_dir/report.html   (open it in a browser; self-contained)"
echo "JSON report: $run_dir/report.json   (compare two runs: medsettle-loadgen compare A.json B.json)"
echo "Text summary: $run_dir/summary.txt; disk floor: $run_dir/disk-floor.txt"
echo "Gateway log: $run_dir/gateway.log"
