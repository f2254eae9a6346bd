#!/usr/bin/env bash
# The test command: installs what is missing, configures, builds and runs the whole suite.
# Usage: scripts/test.sh [extra ctest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/build.sh
ctest --test-dir "${LCTRAIN_BUILD_DIR:-build}" -j "${LCTRAIN_JOBS:-$(nproc)}" --output-on-failure "$@"
