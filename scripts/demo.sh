#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the RAG flow on
# the embedded defaults (no network, no key): the retrieval actor indexes
# the bundled corpus in SQLite, and four questions go to the query actor at
# once through the gather actor, each answer streamed back with its
# sources. Extra arguments go to the example (see examples/rag.c), e.g.
#   bash scripts/demo.sh --response-mode tree_summarize "What is propolis?"
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
AF_BUILD_DIR="$root/build" bash "$root/scripts/build.sh" >/dev/null
exec "$root/build/examples/rag" --data "$root/examples/data" "$@"
