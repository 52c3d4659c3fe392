#!/bin/sh
# Creates the Redis Cluster once: waits until every node answers PING, then
# runs `redis-cli --cluster create … --cluster-replicas 1 --cluster-yes`
# only if no node belongs to a cluster yet. Run again at any time: on a
# created cluster it only checks it. (The bootstrap Job; the compose
# cluster profile's redis-cluster-bootstrap.)
#
# usage: bootstrap.sh HOST:PORT ...   (every node, by DNS name)
# Environment: CLUSTER_REPLICAS (1), BOOTSTRAP_TIMEOUT_SECONDS (600).
set -eu

replicas=${CLUSTER_REPLICAS:-1}
deadline=$(($(date +%s) + ${BOOTSTRAP_TIMEOUT_SECONDS:-600}))
[ "$#" -ge 3 ] || { echo "bootstrap: name every node (at least 3)" >&2; exit 2; }

say() { echo "bootstrap: $*"; }
field() {  # field HOST PORT NAME: NAME's value in CLUSTER INFO
  redis-cli -h "$1" -p "$2" cluster info | tr -d '\r' | sed -n "s/^$3://p"
}

# 1. Every node answers and has an address (CLUSTER MEET takes IPs only).
ips=""
for node in "$@"; do
  host=${node%:*}
  port=${node##*:}
  until [ "$(redis-cli -h "$host" -p "$port" ping 2>/dev/null)" = PONG ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      say "$node does not answer PING; giving up" >&2
      exit 1
    fi
    sleep 2
  done
  ip=$(getent hosts "$host" | sed -n '1s/[[:space:]].*//p')
  [ -n "$ip" ] || { say "$host has no address" >&2; exit 1; }
  ips="$ips $ip:$port"
done
say "every node answers:$ips"

# 2. Already created? Then check it, and name nodes that are not in it.
members=0
strangers=""
for node in "$@"; do
  host=${node%:*}
  port=${node##*:}
  known=$(field "$host" "$port" cluster_known_nodes)
  slots=$(field "$host" "$port" cluster_slots_assigned)
  if [ "${known:-1}" -gt 1 ] || [ "${slots:-0}" -gt 0 ]; then
    members=$((members + 1))
  else
    strangers="$strangers $node"
  fi
done

if [ "$members" -eq 0 ]; then
  say "no node is in a cluster: creating it ($replicas replica(s) per primary)"
  # shellcheck disable=SC2086
  redis-cli --cluster create $ips --cluster-replicas "$replicas" --cluster-yes
else
  if [ -n "$strangers" ]; then
    say "the cluster exists, but these nodes are not in it:$strangers" >&2
    say "an empty node (a lost volume): add it as a replica, docs/OPERATIONS.md \"Redis Cluster\":" >&2
    say "  redis-cli --cluster add-node <its IP>:6379 <a member's IP>:6379 --cluster-slave" >&2
    exit 1
  fi
  say "the cluster exists ($members nodes): not creating it again"
fi

# 3. Healthy: cluster_state:ok, then the whole slot table printed.
first=$1
# shellcheck disable=SC2086
set -- $ips
until [ "$(field "${first%:*}" "${first##*:}" cluster_state)" = ok ]; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    say "cluster_state is not ok" >&2
    redis-cli --cluster check "$1" || true
    exit 1
  fi
  sleep 2
done
redis-cli --cluster check "$1"
say "done"
