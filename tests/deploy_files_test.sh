#!/usr/bin/env bash
# The single-site deployment and monitoring files, checked without running
# anything (CTest: deploy_files, label deploy; docs/OPERATIONS.md,
# "Single-site deployment"):
#   1. deploy/monitoring: promtool check config (loopback and compose
#      scrape configs), promtool check rules, promtool test rules
#      (alerts_test.yml: every alert fires when it should, and not otherwise);
#   2. the Grafana dashboard: valid JSON (cmake's strict parser), imported
#      through the ${DS_PROMETHEUS} input, and every PromQL expr in it
#      (Grafana's $__rate_interval and $variables substituted) checked by
#      promtool as a recording rule;
#   3. deploy/systemd: systemd-analyze verify of both units (copied to a
#      temporary folder with the /usr/local/bin/ binaries replaced by copies
#      of /bin/true of the same name; any warning fails), the sysusers and
#      tmpfiles files applied to a temporary root;
#   4. deploy/compose: `docker compose config -q` or `docker-compose config
#      -q` when one is installed (else skipped, saying why), and always a
#      structural check (image or build, files and volumes referenced exist,
#      depends_on, healthchecks) compiled against yaml-cpp; the Dockerfile's
#      COPY sources exist.
# Needs: promtool (Debian's prometheus), systemd-analyze (systemd), cmake,
# g++ and yaml-cpp (deploy/install-deps.sh installs them).
# usage: bash tests/deploy_files_test.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mon="$here/deploy/monitoring"
units="$here/deploy/systemd"
compose="$here/deploy/compose"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

failures=0
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
need() {  # need PROGRAM PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "FAIL: $1 is not installed (Debian package $2; bash deploy/install-deps.sh)" >&2
  exit 1
}
need promtool prometheus
need systemd-analyze systemd
need cmake cmake
need g++ g++
need pkg-config pkg-config

# ---------------------------------------------------------------- Prometheus
step "1. Prometheus: scrape configuration, alert rules and their unit tests"
if promtool check config "$mon/prometheus.yml"; then ok "prometheus.yml"; else fail "promtool check config prometheus.yml"; fi
# The compose Prometheus reads alerts.yml next to its own configuration.
mkdir -p "$tmp/compose-prom"
cp "$compose/prometheus.yml" "$mon/alerts.yml" "$tmp/compose-prom/"
if promtool check config "$tmp/compose-prom/prometheus.yml"; then ok "compose prometheus.yml"
else fail "promtool check config deploy/compose/prometheus.yml"; fi
if promtool check rules "$mon/alerts.yml"; then ok "alerts.yml"; else fail "promtool check rules alerts.yml"; fi
if (cd "$mon" && promtool test rules alerts_test.yml); then ok "alerts_test.yml"
else fail "promtool test rules alerts_test.yml"; fi
# Every alert has a severity, summary and description, and a test that fires it.
for alert in $(sed -nE 's/^ *- alert: *([A-Za-z0-9_]+).*/\1/p' "$mon/alerts.yml"); do
  grep -Eq "alertname: *$alert\$" "$mon/alerts_test.yml" || fail "$alert has no test in alerts_test.yml"
  awk -v a="$alert" '$0 ~ "alert: *"a"$" {on=1; next} on && /- alert:/ {exit} on' "$mon/alerts.yml" \
    >"$tmp/rule"
  for field in 'severity: (critical|warning)' 'summary:' 'description:' 'docs/OPERATIONS.md'; do
    grep -Eq "$field" "$tmp/rule" || fail "$alert: no $field"
  done
done

# ------------------------------------------------------------------- Grafana
step "2. Grafana dashboard: JSON, the datasource input, every PromQL expression"
dashboard="$mon/grafana/medsettle-dashboard.json"
cat >"$tmp/exprs.cmake" <<'EOF'
# cmake -DIN=dashboard.json -DOUT=rules.yml -P exprs.cmake: strict JSON
# parse, then every "expr" string anywhere in it as a recording rule.
cmake_minimum_required(VERSION 3.19)
file(READ "${IN}" doc)
string(JSON kind ERROR_VARIABLE err TYPE "${doc}")
if(err)
  message(FATAL_ERROR "${IN}: not valid JSON: ${err}")
endif()
string(JSON schema ERROR_VARIABLE err GET "${doc}" schemaVersion)
if(err OR schema LESS 36)
  message(FATAL_ERROR "${IN}: schemaVersion missing or older than 36")
endif()
string(JSON input ERROR_VARIABLE err GET "${doc}" __inputs 0 name)
if(err OR NOT input STREQUAL "DS_PROMETHEUS")
  message(FATAL_ERROR "${IN}: __inputs[0] is not DS_PROMETHEUS")
endif()
set(count 0)
function(walk json)
  string(JSON t TYPE "${json}")
  if(NOT (t STREQUAL "OBJECT" OR t STREQUAL "ARRAY"))
    return()
  endif()
  string(JSON n LENGTH "${json}")
  if(n EQUAL 0)
    return()
  endif()
  math(EXPR last "${n} - 1")
  foreach(i RANGE ${last})
    if(t STREQUAL "OBJECT")
      string(JSON key MEMBER "${json}" ${i})
    else()
      set(key ${i})
    endif()
    string(JSON vt TYPE "${json}" "${key}")
    string(JSON v GET "${json}" "${key}")
    if(t STREQUAL "OBJECT" AND key STREQUAL "expr" AND vt STREQUAL "STRING")
      math(EXPR count "${count} + 1")
      string(REGEX REPLACE "\\$\\{?__(rate_interval|interval|range)\\}?" "5m" v "${v}")
      string(REGEX REPLACE "\\$\\{?[A-Za-z_][A-Za-z0-9_]*(:[a-z]+)?\\}?" ".*" v "${v}")
      string(REPLACE "\n" "\n          " v "${v}")
      file(APPEND "${OUT}" "      - record: dashboard:expr_${count}\n        expr: |-\n          ${v}\n")
    elseif(vt STREQUAL "OBJECT" OR vt STREQUAL "ARRAY")
      walk("${v}")
    endif()
  endforeach()
  set(count ${count} PARENT_SCOPE)
endfunction()
file(WRITE "${OUT}" "groups:\n  - name: dashboard\n    rules:\n")
walk("${doc}")
if(count EQUAL 0)
  message(FATAL_ERROR "${IN}: no expr found")
endif()
message(STATUS "${count} expressions")
EOF
if cmake -DIN="$dashboard" -DOUT="$tmp/dashboard-rules.yml" -P "$tmp/exprs.cmake"; then
  if promtool check rules "$tmp/dashboard-rules.yml"; then ok "dashboard expressions"
  else fail "a dashboard expression does not parse"; fi
else
  fail "medsettle-dashboard.json"
fi
# Only the import-time input as a datasource (and Grafana's own annotations).
if grep -oE '"uid": *"[^"]*"' "$dashboard" | grep -vE '"uid": *"(\$\{DS_PROMETHEUS\}|-- Grafana --|medsettle-overview)"'; then
  fail "a datasource other than \${DS_PROMETHEUS} in the dashboard"
fi
# Every row the runbook names.
for row in Traffic Errors Latency Redis 'Worker queue' Snapshot Ledger Security; do
  grep -q "\"title\": \"$row\"" "$dashboard" || fail "dashboard: no row $row"
done

# ------------------------------------------------------------------- systemd
step "3. systemd: units, sysusers, tmpfiles"
# The units start /usr/local/bin/medsettle-gateway and medsettle-ledger;
# verify needs the binaries to exist, so the copies under test start copies
# of /bin/true of the same names (the flags are not checked here).
mkdir -p "$tmp/units/bin"
cp /bin/true "$tmp/units/bin/medsettle-gateway"
cp /bin/true "$tmp/units/bin/medsettle-ledger"
for unit in medsettle-gateway.service medsettle-ledger-ship.service; do
  sed -e "s#/usr/local/bin/#$tmp/units/bin/#g" "$units/$unit" >"$tmp/units/$unit"
done
# verify only warns (exit 0) on unknown keys and bad values: any output fails.
if out=$(cd "$tmp/units" && SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no \
    ./medsettle-gateway.service ./medsettle-ledger-ship.service 2>&1) && [ -z "$out" ]; then
  ok "systemd-analyze verify"
else
  echo "$out" >&2
  fail "systemd-analyze verify"
fi
for unit in medsettle-gateway.service medsettle-ledger-ship.service; do
  for key in 'Type=simple' 'User=medsettle' 'NoNewPrivileges=yes' 'ProtectSystem=strict' \
      'CapabilityBoundingSet=$' 'SystemCallFilter=@system-service' 'UMask=0077' 'LimitNOFILE=' \
      'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'MemoryDenyWriteExecute=yes'; do
    grep -Eq "^$key" "$units/$unit" || fail "$unit: no $key"
  done
done
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID' "$units/medsettle-gateway.service" ||
  fail "medsettle-gateway.service: ExecReload does not send SIGHUP"
stop=$(sed -nE 's/^TimeoutStopSec=([0-9]+)$/\1/p' "$units/medsettle-gateway.service")
[ "${stop:-0}" -gt 10 ] || fail "medsettle-gateway.service: TimeoutStopSec not above the 10 s drain"
grep -Eq '^(Wants|After)=.*postgresql\.service' "$units/medsettle-ledger-ship.service" ||
  fail "medsettle-ledger-ship.service: not ordered after postgresql"
# sysusers and tmpfiles applied to a temporary root: the user exists there,
# the folders are made. Not root: the chowns fail, nothing else may.
root="$tmp/root"
mkdir -p "$root/etc" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d"
cp "$units/medsettle.sysusers.conf" "$root/usr/lib/sysusers.d/medsettle.conf"
cp "$units/medsettle.tmpfiles.conf" "$root/usr/lib/tmpfiles.d/medsettle.conf"
if command -v systemd-sysusers >/dev/null && systemd-sysusers --root="$root" &&
   grep -q '^medsettle:x:[0-9]*:[0-9]*:.*:/var/lib/medsettle:/usr/sbin/nologin$' "$root/etc/passwd"; then
  ok "sysusers: the medsettle system user"
else
  fail "medsettle.sysusers.conf"
fi
out=$(systemd-tmpfiles --root="$root" --create 2>&1) || true
if [ "$(id -u)" -ne 0 ]; then
  out=$(echo "$out" | grep -v 'fchownat() of .* failed: Operation not permitted' || true)
fi
if [ -z "$out" ] && [ -d "$root/etc/medsettle/tls/crl" ] && [ -d "$root/var/lib/medsettle" ]; then
  ok "tmpfiles: /etc/medsettle, /var/lib/medsettle"
else
  echo "$out" >&2
  fail "medsettle.tmpfiles.conf"
fi

# ------------------------------------------------------------------- compose
step "4. Compose: configuration check, structure, Dockerfile"
checker=""
if docker compose version >/dev/null 2>&1; then
  checker="docker compose"
elif command -v docker-compose >/dev/null 2>&1 && docker-compose version >/dev/null 2>&1; then
  checker="docker-compose"
fi
if [ -n "$checker" ]; then
  # The host folder mounted as /etc/medsettle need not exist for the check.
  if (cd "$compose" && MEDSETTLE_ETC="$tmp" $checker -f compose.yaml config -q); then
    ok "$checker config"
  else
    fail "$checker config -q"
  fi
else
  echo "skipped: docker compose config (neither the Compose plugin nor docker-compose is installed;" \
    "Debian 12 has no Compose v2 plugin and its docker-compose package is not a project dependency)"
fi
cat >"$tmp/check_compose.cc" <<'EOF'
// Structural check of a compose file, no Docker needed: every service has
// an image or a build whose context and Dockerfile exist, every bind mount
// of the repository exists, named volumes are declared, depends_on names
// services (service_healthy ones with a healthcheck, completed ones that do
// not restart), every long-running service has a healthcheck. Merge keys
// (<<: *anchor) are resolved here.
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <iostream>
#include <set>
#include <string>

namespace fs = std::filesystem;
static int errors = 0;
static void Fail(const std::string& what) {
  std::cerr << "compose: " << what << "\n";
  ++errors;
}
static YAML::Node Get(const YAML::Node& service, const std::string& key) {
  if (service[key]) return service[key];
  if (const YAML::Node merged = service["<<"]) {
    if (merged.IsMap() && merged[key]) return merged[key];
    if (merged.IsSequence())
      for (const auto& m : merged)
        if (m[key]) return m[key];
  }
  return YAML::Node(YAML::NodeType::Undefined);  // false, as a missing key is
}
int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const fs::path file = argv[1];
  const fs::path dir = file.parent_path();
  YAML::Node doc;
  try {
    doc = YAML::LoadFile(file.string());
  } catch (const std::exception& e) {
    std::cerr << "compose: " << file << ": " << e.what() << "\n";
    return 1;
  }
  const YAML::Node services = doc["services"];
  if (!services || !services.IsMap() || services.size() == 0) {
    Fail("no services");
    return 1;
  }
  std::set<std::string> names, volumes;
  for (const auto& s : services) names.insert(s.first.as<std::string>());
  if (doc["volumes"])
    for (const auto& v : doc["volumes"]) volumes.insert(v.first.as<std::string>());
  for (const auto& s : services) {
    const std::string name = s.first.as<std::string>();
    const YAML::Node svc = s.second;
    const YAML::Node build = Get(svc, "build");
    if (!Get(svc, "image") && !build) Fail(name + ": neither image nor build");
    if (build) {
      const std::string context = build.IsScalar() ? build.as<std::string>()
                                  : build["context"] ? build["context"].as<std::string>()
                                                     : ".";
      const std::string dockerfile = build.IsMap() && build["dockerfile"]
                                         ? build["dockerfile"].as<std::string>()
                                         : "Dockerfile";
      if (!fs::is_directory(dir / context)) Fail(name + ": build context " + context + " is not a folder");
      if (!fs::is_regular_file(dir / context / dockerfile)) Fail(name + ": " + dockerfile + " missing");
    }
    if (const YAML::Node vols = Get(svc, "volumes"))
      for (const auto& v : vols) {
        std::string source;
        if (v.IsScalar()) {
          const std::string spec = v.as<std::string>();
          const size_t brace = spec.rfind('}');
          const size_t colon = spec.find(':', brace == std::string::npos ? 0 : brace);
          if (colon == std::string::npos) continue;  // an anonymous volume
          source = spec.substr(0, colon);
        } else if (v["source"]) {
          source = v["source"].as<std::string>();
        }
        if (source.empty() || source.find('$') != std::string::npos) continue;  // from the environment
        if (source[0] == '.') {
          if (!fs::exists(dir / source)) Fail(name + ": bind mount " + source + " does not exist");
        } else if (source[0] != '/' && !volumes.count(source)) {
          Fail(name + ": volume " + source + " is not declared under volumes");
        }
      }
    if (const YAML::Node deps = Get(svc, "depends_on"))
      for (const auto& d : deps) {
        const std::string dep = deps.IsSequence() ? d.as<std::string>() : d.first.as<std::string>();
        if (!names.count(dep)) {
          Fail(name + ": depends_on unknown service " + dep);
          continue;
        }
        if (!deps.IsMap()) continue;
        const std::string cond =
            d.second["condition"] ? d.second["condition"].as<std::string>() : "service_started";
        if (cond == "service_healthy") {
          if (!Get(services[dep], "healthcheck")) Fail(name + ": waits for " + dep + " healthy, it has no healthcheck");
        } else if (cond == "service_completed_successfully") {
          const YAML::Node r = Get(services[dep], "restart");
          if (!r || r.as<std::string>() != "no") Fail(name + ": waits for " + dep + " to complete, it restarts");
        } else if (cond != "service_started") {
          Fail(name + ": depends_on " + dep + ": unknown condition " + cond);
        }
      }
    const YAML::Node restart = Get(svc, "restart");
    const bool one_shot = restart && restart.as<std::string>() == "no";
    const YAML::Node health = Get(svc, "healthcheck");
    if (!one_shot && (!health || !health["test"])) Fail(name + ": long-running, without a healthcheck");
    if (const YAML::Node env = Get(svc, "env_file")) {
      if (env.IsScalar() && !fs::exists(dir / env.as<std::string>())) Fail(name + ": env_file missing");
      if (env.IsSequence())
        for (const auto& e : env)
          if (e.IsScalar() && !fs::exists(dir / e.as<std::string>())) Fail(name + ": env_file missing");
    }
  }
  for (const char* section : {"configs", "secrets"})
    if (doc[section])
      for (const auto& c : doc[section])
        if (c.second["file"]) {
          const std::string f = c.second["file"].as<std::string>();
          if (f.find('$') == std::string::npos && !fs::exists(dir / f))
            Fail(std::string(section) + ": " + f + " missing");
        }
  if (errors == 0) std::cout << "compose: " << services.size() << " services, structure OK\n";
  return errors == 0 ? 0 : 1;
}
EOF
# shellcheck disable=SC2046
if g++ -std=c++20 -O0 "$tmp/check_compose.cc" -o "$tmp/check_compose" $(pkg-config --cflags --libs yaml-cpp); then
  "$tmp/check_compose" "$compose/compose.yaml" || fail "compose.yaml structure"
else
  fail "could not build the compose checker (g++, libyaml-cpp-dev)"
fi
for svc in redis postgres migrate gateway shipper prometheus; do
  grep -Eq "^  $svc:" "$compose/compose.yaml" || fail "compose.yaml: no service $svc"
done
# The Dockerfile: built from debian:12 with deploy/install-deps.sh; every
# COPY from the context names something that exists (context: the checkout).
grep -q 'debian:12' "$compose/Dockerfile" || fail "Dockerfile: not debian:12"
grep -q 'deploy/install-deps.sh' "$compose/Dockerfile" || fail "Dockerfile: does not use deploy/install-deps.sh"
while read -r src; do
  [ "$src" = "." ] || [ -e "$here/$src" ] || fail "Dockerfile: COPY $src: not in the checkout"
done < <(sed -nE '/^COPY +--from/d; s/^COPY +([^ ]+) +[^ ]+$/\1/p' "$compose/Dockerfile")
[ -f "$compose/Dockerfile.dockerignore" ] || fail "Dockerfile.dockerignore missing"

echo
if [ "$failures" -ne 0 ]; then
  echo "deploy_files: $failures check(s) failed" >&2
  exit 1
fi
echo "deploy_files: all checks passed"
