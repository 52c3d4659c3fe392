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
  # The demo needs only these three programs.
  cmake --build "$build_dir" --target medsettle-gateway medsettle-cli medsettle-snapshot
  exec bash "$here/deploy/demo.sh" "$build_dir"
fi
cmake --build "$build_dir"
ctest --test-dir "$build_dir" --output-on-failure --timeout 300 -j "$(nproc)"
