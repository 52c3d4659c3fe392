#!/usr/bin/env bash
# A PostgreSQL server of one's own in a folder, for the demo, development
# and operators trying medsettle-ledger — not a production installation
# (that is Debian's postgresql-common with its own clusters; see
# ledger/README.md).
#
#   pg-local.sh start  DIR [PORT]   initdb DIR/data on first use, start the
#                                   server on 127.0.0.1:PORT (a free port
#                                   when omitted), create the database
#                                   "medsettle"; writes DIR/port and
#                                   DIR/conninfo and prints the conninfo.
#                                   Already running: prints its conninfo.
#   pg-local.sh stop   DIR          fast shutdown (sessions ended, checkpoint)
#   pg-local.sh status DIR          "running <conninfo>" (exit 0) or
#                                   "stopped" (exit 3)
#
# Loopback only, trust authentication (anyone on this machine may connect
# as the superuser "postgres"): for a demo, never for real data. The unix
# socket is in DIR. PostgreSQL refuses to run as root: as root, DIR is
# given to the postgres system user and every server command runs as it
# (runuser -u postgres --). The binaries: $MEDSETTLE_PG_BINDIR, else the
# newest /usr/lib/postgresql/<major>/bin (Debian's postgresql package).
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

die() {
  echo "pg-local: $*" >&2
  exit 1
}

find_bindir() {
  if [ -n "${MEDSETTLE_PG_BINDIR:-}" ]; then
    [ -x "$MEDSETTLE_PG_BINDIR/pg_ctl" ] || die "MEDSETTLE_PG_BINDIR=$MEDSETTLE_PG_BINDIR has no pg_ctl"
    echo "$MEDSETTLE_PG_BINDIR"
    return
  fi
  local best="" major best_major=-1 dir
  for dir in /usr/lib/postgresql/*/bin; do
    if [ ! -x "$dir/pg_ctl" ] || [ ! -x "$dir/initdb" ]; then continue; fi
    major=$(basename "$(dirname "$dir")")
    major=${major%%.*}
    if [[ "$major" =~ ^[0-9]+$ ]] && [ "$major" -gt "$best_major" ]; then
      best_major=$major
      best=$dir
    fi
  done
  [ -n "$best" ] || die "PostgreSQL not found under /usr/lib/postgresql/*/bin: bash deploy/install-deps.sh"
  echo "$best"
}

# Runs a command as the server's user: postgres when we are root.
as_server() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# 0 when something accepts TCP connections on 127.0.0.1:$1.
port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
  local p _
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    if ! port_taken "$p"; then
      echo "$p"
      return
    fi
  done
  die "no free loopback port found"
}

running() {  # DIR: 0 when its server runs
  [ -f "$1/data/postmaster.pid" ] && as_server "$BIN/pg_ctl" -D "$1/data" status >/dev/null 2>&1
}

conninfo_of() {  # DIR
  echo "host=127.0.0.1 port=$(cat "$1/port") user=postgres dbname=medsettle"
}

cmd_start() {
  local dir=$1 port=${2:-}
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root and there is no postgres user (install postgresql)"
    chown postgres: "$dir"
    [ -d "$dir/data" ] && chown -R postgres: "$dir/data"
    runuser -u postgres -- test -w "$dir" ||
      die "the postgres user cannot write $dir (a parent folder is closed to it?); use a folder under /tmp or /srv"
  fi
  if running "$dir"; then
    conninfo_of "$dir" | tee "$dir/conninfo"
    return
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_server "$BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C \
      --no-instructions >"$dir/initdb.log" 2>&1 ||
      die "initdb failed; see $dir/initdb.log"
  fi
  # The socket in DIR when the path is short enough for a unix socket.
  local socket_dir="$dir"
  if [ "${#dir}" -gt 90 ]; then socket_dir=""; fi
  local attempt
  for attempt in 1 2 3 4 5; do
    [ -n "$port" ] || port=$(free_port)
    if as_server "$BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
      -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='$socket_dir'" \
      start >/dev/null; then
      break
    fi
    if [ -n "${2:-}" ] || [ "$attempt" -eq 5 ]; then
      die "the server did not start on port $port; see $dir/postgres.log"
    fi
    port=""  # taken meanwhile: another
  done
  echo "$port" >"$dir/port"
  local psql="$BIN/psql"
  [ -x "$psql" ] || psql=psql
  if [ "$("$psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -XAtc \
    "SELECT 1 FROM pg_database WHERE datname = 'medsettle'")" != "1" ]; then
    "$psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Xqc "CREATE DATABASE medsettle" ||
      die "cannot create the database medsettle"
  fi
  conninfo_of "$dir" | tee "$dir/conninfo"
}

cmd_stop() {
  local dir=$1
  [ -d "$dir/data" ] || die "$dir holds no server (no $dir/data)"
  if running "$dir"; then
    as_server "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
    echo "pg-local: stopped $dir"
  else
    echo "pg-local: $dir is not running"
  fi
}

cmd_status() {
  local dir=$1
  if [ -d "$dir/data" ] && running "$dir"; then
    echo "running $(conninfo_of "$dir")"
  else
    echo "stopped"
    exit 3
  fi
}

[ $# -ge 2 ] || usage
BIN=$(find_bindir)
case "$1" in
  start) [ $# -le 3 ] || usage; cmd_start "$2" "${3:-}" ;;
  stop) [ $# -eq 2 ] || usage; cmd_stop "$2" ;;
  status) [ $# -eq 2 ] || usage; cmd_status "$2" ;;
  *) usage ;;
esac
