#!/bin/sh
# Starts one Redis Cluster node (the StatefulSet's pods; the compose
# cluster profile's nodes).
#
# Pod IPs change when pods are recreated, and nodes.conf remembers the
# peers by IP: after every pod moved at once (a cluster-wide restart), no
# node could reach another. So each node announces its stable DNS name
# (cluster-announce-hostname, stored in nodes.conf), and before Redis
# starts, every peer's IP in nodes.conf is refreshed from that name. Clients
# still get IPs (cluster-preferred-endpoint-type stays ip).
#
# Environment: REDIS_ANNOUNCE_HOSTNAME (required: this node's DNS name),
# POD_IP (else hostname -i), REDIS_MEMORY_LIMIT_MB (the container's memory
# limit: maxmemory is set to 3/4 of it).
set -eu

conf=/data/nodes.conf
name=${REDIS_ANNOUNCE_HOSTNAME:?REDIS_ANNOUNCE_HOSTNAME is not set}
me=${POD_IP:-$(hostname -i | cut -d' ' -f1)}

resolve() {  # resolve NAME: its first address, or nothing
  getent hosts "$1" | sed -n '1s/[[:space:]].*//p'
}

if [ -s "$conf" ]; then
  tmp="$conf.start"
  : >"$tmp"
  # A node line: <id> <ip>:<port>@<cport>,<hostname> <flags> ...
  while IFS= read -r line; do
    set -f
    # shellcheck disable=SC2086
    set -- $line
    set +f
    case "${2:-}" in
      *:*@*,?*)
        host=${2#*,}
        endpoint=${2%%,*}
        ports=${endpoint##*:}
        case "${3:-}" in
          *myself*) ip=$me ;;
          *) ip=$(resolve "$host") ;;
        esac
        # A peer not resolvable now (its pod is gone) keeps its old IP:
        # gossip corrects it once it is back.
        if [ -n "$ip" ]; then
          rest=${line#"$1 $2"}
          line="$1 $ip:$ports,$host$rest"
        fi
        ;;
    esac
    printf '%s\n' "$line" >>"$tmp"
  done <"$conf"
  mv "$tmp" "$conf"
fi

# Below the container's limit, so that memory running out makes writes fail
# (noeviction: UNAVAILABLE at the gateway) instead of the kernel killing
# Redis; the rest is for the AOF rewrite's fork and replication buffers.
set -- /etc/redis-cluster/cluster.conf --cluster-announce-hostname "$name"
if [ -n "${REDIS_MEMORY_LIMIT_MB:-}" ]; then
  set -- "$@" --maxmemory "$((REDIS_MEMORY_LIMIT_MB * 3 / 4))mb"
fi
exec redis-server "$@"
