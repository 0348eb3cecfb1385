#!/usr/bin/env bash
# The whole test suite, from a clean clone on Debian 12:
#   1. install what is missing (scripts/setup.sh)
#   2. check formatting
#   3. build with -Werror and run every test through ctest, then install it
#      and build a user's program against it (find_package, pkg-config)
#   4. rebuild with AddressSanitizer + UndefinedBehaviorSanitizer and run
#      them again
#   5. run every test executable under valgrind, failing on any leak or
#      memory error
#   6. fuzz every fuzz/ target for AF_FUZZ_SECONDS (default 60) seconds
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

step() { printf '\n=== %s\n' "$*"; }

step "setup"
bash scripts/setup.sh

step "format check"
bash scripts/format.sh --check

step "build and test"
AF_BUILD_DIR="$root/build" bash scripts/build.sh
(cd build && ctest --output-on-failure --timeout 300)

step "install"
bash scripts/check_install.sh

step "AddressSanitizer + UndefinedBehaviorSanitizer"
AF_BUILD_DIR="$root/build-asan" bash scripts/build.sh \
	-DAF_SANITIZE=ON -DAF_BENCH=OFF -DAF_EXAMPLES=OFF
(cd build-asan &&
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure --timeout 300)

step "valgrind"
failed=0
for t in build/tests/test_*; do
	name=$(basename "$t")
	[ "$name" = test_node ] && continue
	if ! AF_UNDER_VALGRIND=1 valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
		--errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
		"$t" >"build/valgrind-$name.log" 2>&1; then
		echo "valgrind: $name failed (build/valgrind-$name.log):"
		tail -40 "build/valgrind-$name.log"
		failed=1
	else
		echo "valgrind: $name clean"
	fi
done
[ $failed -eq 0 ]

step "fuzz (${AF_FUZZ_SECONDS:-60} s per target)"
bash scripts/fuzz.sh

step "final run"
(cd build && ctest --timeout 300)
