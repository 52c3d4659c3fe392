#!/usr/bin/env bash
# The project's two entry points, for a fresh Debian machine (as root):
#   bash deploy/run.sh demo   install what is missing, build, run the main job
#   bash deploy/run.sh test   install what is missing, build, run every test
# Environment: MEDSETTLE_BUILD_TYPE (Release|Debug, default Release),
# MEDSETTLE_BUILD_DIR (default build/<type lowercase>), CI=true makes
# warnings errors.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode="${1:-}"
case "$mode" in
  demo|test) ;;
  *) echo "usage: bash deploy/run.sh demo|test" >&2; exit 2 ;;
esac

build_type="${MEDSETTLE_BUILD_TYPE:-Release}"
build_dir="${MEDSETTLE_BUILD_DIR:-$here/build/${build_type,,}}"
werror=OFF
if [ "$mode" = test ] || [ "${CI:-}" = true ]; then werror=ON; fi

bash "$here/deploy/install-deps.sh"

cmake -S "$here" -B "$build_dir" -G Ninja \
  -DCMAKE_BUILD_TYPE="$build_type" -DMEDSETTLE_WERROR="$werror" >/dev/null
if [ "$mode" = demo ]; then
  cmake --build "$build_dir" --target medsettle-calc   # the demo needs only the calculator
else
  cmake --build "$build_dir"
fi

calc="$build_dir/tools/calc/medsettle-calc"
if [ "$mode" = demo ]; then
  # The main job (for now): the calculator on the bundled example bills.
  for scenario in "$here"/tools/calc/examples/*.json; do
    # An example may show a refusal (exit 1 with the error); go on to the next.
    "$calc" --scenario "$scenario" --explain || true
    echo
  done
  echo "All example bills at once, as NDJSON (one response per line):"
  "$calc" < "$here/tools/calc/examples/all.ndjson" | cut -c1-160
  echo
  echo "Try your own bill: $calc --scenario FILE --explain (see docs/API.md)"
else
  ctest --test-dir "$build_dir" --output-on-failure --timeout 300 -j "$(nproc)"
fi
