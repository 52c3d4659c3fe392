#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a
# bounded time from its seeds. Exit status non-zero on any crash, sanitizer
# report or build failure. CI runs it after the test suites.
#   bash deploy/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
# Environment: MEDSETTLE_FUZZ_BUILD_DIR (default build/fuzz). Findings are
# written to the build directory (crash-*, the input that failed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-60}"
build_dir="${MEDSETTLE_FUZZ_BUILD_DIR:-$here/build/fuzz}"

bash "$here/deploy/install-deps.sh"
clang="$(command -v clang++-14 || command -v clang++ || true)"
if [ -z "$clang" ]; then echo "fuzz: clang++ not found" >&2; exit 1; fi

cmake -S "$here" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER="$clang" -DMEDSETTLE_FUZZ=ON -DMEDSETTLE_WERROR=OFF >/dev/null
cmake --build "$build_dir" --target ec_token_fuzz settle_request_fuzz

# Working corpora live in the build directory; the committed seeds stay as
# they are. SettleRequest seeds are text format, encoded with protoc.
corpus="$build_dir/corpus"
mkdir -p "$corpus/ec_token" "$corpus/settle_request"
cp "$here"/tests/fuzz/corpus/ec_token/* "$corpus/ec_token/"
for seed in "$here"/tests/fuzz/seeds/*.txtpb; do
  protoc --proto_path="$here/proto" --encode=medsettle.v1.SettleRequest \
    medsettle/v1/settlement.proto <"$seed" >"$corpus/settle_request/$(basename "$seed" .txtpb).bin"
done

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
rm -f "$build_dir"/crash-* "$build_dir"/leak-* "$build_dir"/timeout-*
status=0
for target in ec_token_fuzz settle_request_fuzz; do
  name="${target%_fuzz}"
  echo "fuzz: $target for ${seconds}s"
  if ! (cd "$build_dir" && "./tests/fuzz/$target" -max_total_time="$seconds" -max_len=4096 \
          -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$corpus/$name" \
          2>&1 | tail -n 25); then
    status=1
  fi
done
# pipefail gives the fuzzer's status; the files say what it found.
if compgen -G "$build_dir/crash-*" >/dev/null || compgen -G "$build_dir/leak-*" >/dev/null ||
   compgen -G "$build_dir/timeout-*" >/dev/null; then
  echo "fuzz: findings in $build_dir:" >&2
  ls "$build_dir"/crash-* "$build_dir"/leak-* "$build_dir"/timeout-* 2>/dev/null >&2 || true
  status=1
fi
exit "$status"
