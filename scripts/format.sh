#!/usr/bin/env bash
# Formats the C sources with the repository's .clang-format.
#   scripts/format.sh          rewrite files in place
#   scripts/format.sh --check  list unformatted files and fail
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mapfile -t files < <(git ls-files '*.c' '*.h' '*.cpp')
if [ "${1:-}" = "--check" ]; then
	clang-format --dry-run -Werror "${files[@]}"
else
	clang-format -i "${files[@]}"
fi
