#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the scripted
# example flow on the embedded defaults (no network, no key).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
AF_BUILD_DIR="$root/build" bash "$root/scripts/build.sh" >/dev/null
"$root/build/examples/ping_pong"
