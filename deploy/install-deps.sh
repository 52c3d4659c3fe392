#!/usr/bin/env bash
# Installs every Debian package medsettle needs to build, test and run.
# Idempotent and non-interactive: packages already present are skipped, so a
# second run does nothing but check. Nothing is downloaded from outside
# Debian's archive. The C++ compiler itself is assumed (g++ ≥ 12).
set -euo pipefail

PACKAGES=(
  # build
  cmake ninja-build ccache pkg-config
  # contract and transport
  protobuf-compiler libprotobuf-dev libgrpc++-dev protobuf-compiler-grpc libabsl-dev
  # storage, crypto, configuration
  libhiredis-dev libssl-dev libyaml-cpp-dev redis-server
  # the ledger (PostgreSQL 15, the system of record) and the settlement
  # records' compression (zstd with a trained dictionary)
  postgresql libpq-dev libzstd-dev
  # the gateway's allocator: glibc malloc cost a fifth of its CPU, objects
  # made on one thread and freed on another (gRPC's, Redis I/O, workers)
  libjemalloc-dev
  # command-line parsing of the newer tools (medsettle-ledger)
  libcli11-dev
  # the metrics endpoint's HTTP server (gateway, shipper)
  libcpp-httplib-dev
  # operations: promtool checks the metrics output, scrape configuration and
  # alert rules; headless Chromium renders the load generator's HTML report
  prometheus chromium
  # e-insurance code QR codes (medsettle-voucher --qr; qrencode for operators)
  libqrencode-dev qrencode
  # tests and benchmarks; clang and its runtime for the libFuzzer targets
  googletest libgtest-dev libgmock-dev libbenchmark-dev clang-14 libclang-rt-14-dev
  # the Kubernetes manifests' check (tests/kubernetes_manifests_test.sh):
  # yamllint, and PyYAML to read the rendered objects
  yamllint python3-yaml
)
# kubectl renders the kustomization (offline): Debian's kubernetes-client,
# unless a kubectl is already installed (Kubernetes' own apt repository, a
# cloud SDK): both would own /usr/bin/kubectl.
if ! command -v kubectl >/dev/null 2>&1; then
  PACKAGES+=(kubernetes-client)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
