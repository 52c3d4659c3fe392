#!/usr/bin/env bash
# The shipped Redis configuration (deploy/redis/medsettle-redis.conf) loads,
# has the durability settings the design relies on, and keeps an
# acknowledged write across kill -9 and a restart from its AOF.
# Talks only to 127.0.0.1; bounded in time; cleans up after itself.
set -euo pipefail
conf="$1"
command -v redis-server >/dev/null || { echo "redis-server not installed"; exit 1; }
work="$(mktemp -d)"; pid=""
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

start() {  # start on $port in $work; wait (≤ 5 s) until it answers
  redis-server "$conf" --port "$port" --bind 127.0.0.1 --dir "$work" --daemonize no \
    > "$work/redis.log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do
    if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# A free port: try a few random ones (another test may hold one).
for _ in $(seq 10); do
  port=$(( 20000 + RANDOM % 30000 ))
  if start; then break; fi
  kill -9 "$pid" 2>/dev/null || true; pid=""
done
[ -n "$pid" ] || { echo "FAIL: redis-server did not start"; cat "$work/redis.log"; exit 1; }

cli() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }
[ "$(cli config get appendonly | tail -1)" = yes ] || { echo "FAIL: appendonly"; exit 1; }
[ "$(cli config get appendfsync | tail -1)" = always ] || { echo "FAIL: appendfsync"; exit 1; }
[ "$(cli config get maxmemory-policy | tail -1)" = noeviction ] || { echo "FAIL: eviction"; exit 1; }

[ "$(cli set acknowledged settlement-1)" = OK ] || { echo "FAIL: write"; exit 1; }
kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=""
start || { echo "FAIL: restart"; cat "$work/redis.log"; exit 1; }
[ "$(cli get acknowledged)" = settlement-1 ] || { echo "FAIL: acknowledged write lost"; exit 1; }
cli shutdown nosave >/dev/null 2>&1 || true
echo "1 passed, 0 failed"
