#!/usr/bin/env bash
# Configures and builds into build/ (or the directory in AF_BUILD_DIR).
# Extra arguments go to cmake, e.g. scripts/build.sh -DAF_SANITIZE=ON.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${AF_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
jobs=$(nproc)
cmake --build "$build" -j"$jobs"
