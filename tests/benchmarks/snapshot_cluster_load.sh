#!/usr/bin/env bash
# Snapshot load into a Redis Cluster (docs/PERFORMANCE.md, "Redis
# Cluster"): starts three primaries and three replicas on 127.0.0.1 with
# the shipped deploy/redis/medsettle-redis.conf (AOF appendfsync always),
# synthesises PERSONS persons (default 10,000,000; the CSV is kept in WORK
# for the next run), loads them with medsettle-snapshot --redis-mode
# cluster, and prints the wall time and the primaries' used_memory per
# person. Stops the nodes at the end. A benchmark, not a test: run it on a
# quiet machine.
#
#   bash tests/benchmarks/snapshot_cluster_load.sh [BUILD_DIR]
#   env: PERSONS (10000000), WORK (/tmp/medsettle-snapshot-cluster-load),
#        FIRST_PORT (41001: nodes on FIRST_PORT…FIRST_PORT+5, cluster bus +10000)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$here/build/release}"
snapshot="$build/tools/snapshot/medsettle-snapshot"
persons="${PERSONS:-10000000}"
work="${WORK:-/tmp/medsettle-snapshot-cluster-load}"
first="${FIRST_PORT:-41001}"
ports=()
for i in 0 1 2 3 4 5; do ports+=($((first + i))); done
[ -x "$snapshot" ] || { echo "no $snapshot: build first (cmake --build $build)" >&2; exit 2; }

stop_nodes() {
  for p in "${ports[@]}"; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
}
trap stop_nodes EXIT
stop_nodes
rm -rf "$work/nodes"
mkdir -p "$work/nodes"
for p in "${ports[@]}"; do
  mkdir -p "$work/nodes/$p"
  redis-server "$here/deploy/redis/medsettle-redis.conf" --port "$p" --bind 127.0.0.1 \
    --dir "$work/nodes/$p" --logfile "$work/nodes/$p/redis.log" --daemonize yes \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
    --cluster-require-full-coverage no
done
for p in "${ports[@]}"; do
  for _ in $(seq 1 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
redis-cli --cluster create $(printf "127.0.0.1:%s " "${ports[@]}") --cluster-replicas 1 \
  --cluster-yes >"$work/create.log" 2>&1
for _ in $(seq 1 100); do
  redis-cli -p "$first" cluster info | grep -q cluster_state:ok && break
  sleep 0.1
done
sleep 2  # the replicas' first sync

[ -f "$work/key" ] || head -c 32 /dev/urandom >"$work/key"
csv="$work/persons-$persons.csv"
if [ ! -f "$csv" ]; then
  /usr/bin/time -f "synth: %e s" "$snapshot" synth --persons "$persons" --seed 1 --out "$csv" \
    --institutions-out "$work/institutions.csv"
fi
echo "persons CSV: $(du -h "$csv" | cut -f1)"

primaries_memory() {
  local total=0 m
  for p in $(redis-cli -p "$first" cluster nodes | awk '/master/ { split($2, a, "[:@]"); print a[2] }'); do
    m=$(redis-cli -p "$p" info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p')
    total=$((total + m))
  done
  echo "$total"
}
before=$(primaries_memory)
/usr/bin/time -f "load: %e s wall, %U s user, %M KB peak RSS" "$snapshot" load --persons "$csv" \
  --institutions "$work/institutions.csv" --key-file "$work/key" \
  --redis "127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}" --redis-mode cluster \
  2> >(tr '\r' '\n' | grep -v '^loading persons' >&2)
sleep 1
after=$(primaries_memory)
echo "primaries' used_memory: $before -> $after bytes: $(( (after - before) / persons )) bytes per person"
for p in "${ports[@]}"; do
  echo "127.0.0.1:$p $(redis-cli -p "$p" info replication | sed -n 's/^role:\(.*\)\r$/\1/p')" \
    "keys $(redis-cli -p "$p" dbsize) AOF $(du -sh "$work/nodes/$p" | cut -f1)"
done
