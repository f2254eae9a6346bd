#!/usr/bin/env bash
# The test command: installs what is missing, configures, builds and runs the whole suite.
# Usage: scripts/test.sh [extra ctest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/build.sh
# Tests run side by side (-j): one CPU thread each, as LibTorch's own default here, so they do not
# oversubscribe the cores (lctrain would otherwise take every CPU; util/cpu_threads.h).
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} ctest --test-dir "${LCTRAIN_BUILD_DIR:-build}" -j "${LCTRAIN_JOBS:-$(nproc)}" --output-on-failure "$@"
