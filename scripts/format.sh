#!/usr/bin/env bash
# Formats the C sources with the repository's .clang-format.
#   scripts/format.sh          rewrite files in place
#   scripts/format.sh --check  list unformatted files and fail
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# Tracked files and new ones not yet added (but not ignored ones, such as
# build trees): a new file is checked before its first commit.
# Listed first, then read: a failing git inside <(...) would go unseen
# and leave nothing to check.
list=$(git ls-files --cached --others --exclude-standard \
	'*.c' '*.h' '*.cpp')
if [ -z "$list" ]; then
	echo "format.sh: no C sources found" >&2
	exit 1
fi
mapfile -t files <<<"$list"
if [ "${1:-}" = "--check" ]; then
	clang-format --dry-run -Werror "${files[@]}"
else
	clang-format -i "${files[@]}"
fi
