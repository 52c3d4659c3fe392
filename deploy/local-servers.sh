# Sourced by deploy/demo.sh and deploy/loadtest.sh: what both need to run
# their own servers on loopback. Not a program of its own.

# A loopback port nobody listens on, from $1 upward.
free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# start_redis HERE RUN_DIR WHO: a redis-server with the shipped
# configuration on a free port from 16379, data and log under RUN_DIR, in
# the background; sets redis_port and redis_pid, waits until it answers
# PING (else names its log and exits 1, WHO: the caller's name).
start_redis() {
  local here=$1 run_dir=$2 who=$3
  redis_port=$(free_port 16379)
  redis-server "$here/deploy/redis/medsettle-redis.conf" --port "$redis_port" --bind 127.0.0.1 \
    --dir "$run_dir/redis" --logfile "$run_dir/redis.log" --daemonize no &
  redis_pid=$!
  for _ in $(seq 1 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  redis-cli -p "$redis_port" ping >/dev/null ||
    { echo "$who: redis did not start; see $run_dir/redis.log" >&2; exit 1; }
}
