#!/usr/bin/env bash
# Configures (once) and builds lctrain in $LCTRAIN_BUILD_DIR (default build/), Release, all cores.
# Usage: scripts/build.sh [cmake --build arguments, e.g. --target lctrain]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${LCTRAIN_BUILD_DIR:-build}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$build_dir" -j "${LCTRAIN_JOBS:-$(nproc)}" "$@"
