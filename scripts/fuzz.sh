#!/usr/bin/env bash
# Builds and runs every libFuzzer target in fuzz/.
#
#   scripts/fuzz.sh              all targets, AF_FUZZ_SECONDS (60) each
#   scripts/fuzz.sh envelope     only fuzz/fuzz_envelope.c
#
# A target fuzz/fuzz_NAME.c names what it links in comment lines:
#   FUZZ_SOURCES: runtime/a.c runtime/b.c   (repeatable, repo-relative)
#   FUZZ_PKGS: msgpack                      (pkg-config modules)
#   FUZZ_CFLAGS: -Iactors/chat              (extra compiler flags)
# and its seeds live in fuzz/corpus/NAME/. The seeds are copied to a
# scratch directory, so fuzzing never writes into the repository; crash
# inputs land in build-fuzz/artifacts/NAME/ and logs in build-fuzz/logs/.
# Exits non-zero if a target fails to build or finds a crash, leak,
# timeout or out-of-memory.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

seconds=${AF_FUZZ_SECONDS:-60}
cc=${CC:-clang}
out=build-fuzz
mkdir -p "$out/logs" "$out/artifacts"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# The words after "TAG:" on every line of file that carries it.
directive() {
	sed -n "s/^.*$1:[[:space:]]*//p" "$2" | tr '\n' ' '
}

targets=()
if [ $# -gt 0 ]; then
	for name in "$@"; do
		targets+=("fuzz/fuzz_$name.c")
	done
else
	shopt -s nullglob
	targets=(fuzz/fuzz_*.c)
	shopt -u nullglob
fi
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz.sh: no fuzz targets found" >&2
	exit 1
fi

failed=()
for src in "${targets[@]}"; do
	if [ ! -f "$src" ]; then
		echo "fuzz.sh: no such target: $src" >&2
		failed+=("$src")
		continue
	fi
	name=$(basename "$src" .c)
	name=${name#fuzz_}
	bin="$out/fuzz_$name"

	sources=$(directive FUZZ_SOURCES "$src")
	pkgs=$(directive FUZZ_PKGS "$src")
	cflags=$(directive FUZZ_CFLAGS "$src")
	pkgflags=""
	if [ -n "${pkgs// /}" ]; then
		# shellcheck disable=SC2086
		pkgflags=$(pkg-config --cflags --libs $pkgs)
	fi

	echo "== building $name"
	# shellcheck disable=SC2086
	if ! "$cc" -std=gnu11 -g -O1 -fno-omit-frame-pointer \
		-fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined \
		-Wall -Wextra -Werror -Wno-unused-parameter \
		-Iinclude -Iruntime $cflags \
		"$src" $sources $pkgflags -o "$bin"; then
		failed+=("$name (build)")
		continue
	fi

	corpus="$scratch/$name"
	mkdir -p "$corpus" "$out/artifacts/$name"
	if [ -d "fuzz/corpus/$name" ]; then
		cp -R "fuzz/corpus/$name/." "$corpus/"
	else
		echo "fuzz.sh: warning: no seeds in fuzz/corpus/$name" >&2
	fi

	echo "== fuzzing $name for ${seconds}s"
	log="$out/logs/$name.log"
	if UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		"./$bin" -max_total_time="$seconds" -rss_limit_mb=2048 \
		-timeout=10 -print_final_stats=1 \
		-artifact_prefix="$out/artifacts/$name/" \
		"$corpus" >"$log" 2>&1; then
		grep -E '^#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb' \
			"$log" || true
		inputs=$(find "$corpus" -type f | wc -l)
		echo "   corpus grew to $inputs inputs"
	else
		echo "== $name FAILED; last lines of $log:" >&2
		tail -n 40 "$log" >&2
		failed+=("$name")
	fi
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz.sh: failed: ${failed[*]}" >&2
	exit 1
fi
echo "fuzz.sh: all targets passed"
