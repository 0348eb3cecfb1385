#!/usr/bin/env bash
# run_runtime_bench.sh - runs actorflow's runtime benchmark in one invocation
# and prints a markdown table: raw libzmq (the floor), CAF 0.17 (a mature
# actor runtime) and actorflow, side by side, with ratios.
#
# usage: bench/run_runtime_bench.sh [--build-dir DIR] [--repeat N]
#            [--taskset CPUS] [--raw FILE] [--] [PROGRAM OPTIONS...]
#
#   --build-dir DIR  CMake build tree holding bench/ (default: ./build under
#                    the repository root, or $BUILD_DIR)
#   --repeat N       run every program N times; cells show the median and,
#                    for N > 1, the range
#   --taskset CPUS   run every program under `taskset -c CPUS`
#   --raw FILE       also save the raw RESULT lines to FILE
#   PROGRAM OPTIONS  passed to every program unchanged; all of them accept
#                    --quick, --rtt-iters N, --tell-msgs N and --sizes LIST
#
# Programs (any missing optional one is skipped with a note):
#   bench/af_bench_zmq_baseline  required; impl "zmq"
#   bench/af_bench_caf           optional; impls "caf" and "caf_detached"
#   bench/af_bench_runtime       optional; impl "actorflow"
# Each prints lines "RESULT <workload> <impl> <size> <value> <unit>" on
# stdout; everything else they print is ignored. The table goes to stdout,
# progress to stderr.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
repeat=1
cpus=
raw_out=

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
	case $1 in
	--build-dir) build_dir=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--taskset) cpus=$2; shift 2 ;;
	--raw) raw_out=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	--) shift; break ;;
	*) break ;;
	esac
done
case $repeat in
'' | *[!0-9]* | 0) echo "--repeat takes a positive count" >&2; exit 2 ;;
esac

zmq_prog=$build_dir/bench/af_bench_zmq_baseline
caf_prog=$build_dir/bench/af_bench_caf
af_prog=$build_dir/bench/af_bench_runtime

if [ ! -x "$zmq_prog" ]; then
	echo "no $zmq_prog; build first:" >&2
	echo "  cmake -S $root -B $build_dir && cmake --build $build_dir" >&2
	exit 1
fi
if ! command -v python3 >/dev/null; then
	echo "python3 is needed to print the table" >&2
	exit 1
fi

progs=("$zmq_prog")
if [ -x "$caf_prog" ]; then
	progs+=("$caf_prog")
else
	echo "note: no $caf_prog (CAF or C++ missing at configure time)" >&2
fi
if [ -x "$af_prog" ]; then
	progs+=("$af_prog")
else
	echo "note: no $af_prog yet; actorflow columns will be empty" >&2
fi

prefix=()
if [ -n "$cpus" ]; then
	prefix=(taskset -c "$cpus")
fi
# A hung peer must not hang CI: each program gets a generous wall-clock cap.
if command -v timeout >/dev/null; then
	prefix=(timeout 600 "${prefix[@]}")
fi

results=$(mktemp "${TMPDIR:-/tmp}/af-bench-results.XXXXXX")
trap 'rm -f "$results"' EXIT

failed=0
for ((run = 1; run <= repeat; run++)); do
	for prog in "${progs[@]}"; do
		echo "run $run/$repeat: $(basename "$prog") $*" >&2
		if ! ${prefix[@]+"${prefix[@]}"} "$prog" "$@" >"$results.out"; then
			echo "warning: $(basename "$prog") failed" >&2
			failed=1
		fi
		grep '^RESULT ' "$results.out" >>"$results" || true
		rm -f "$results.out"
	done
done
if [ -n "$raw_out" ]; then
	cp "$results" "$raw_out"
fi

cpu_model=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo 2>/dev/null |
	head -n1)
zmq_version=$("$zmq_prog" --version 2>/dev/null || true)
caf_version=
if [ -x "$caf_prog" ]; then
	caf_version=$("$caf_prog" --version 2>/dev/null || true)
fi
git_rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$git_rev" != unknown ] &&
	[ -n "$(git -C "$root" status --porcelain 2>/dev/null | head -n1)" ]; then
	git_rev="$git_rev (with local changes)"
fi

AF_MACHINE_NPROC=$(nproc 2>/dev/null || echo '?') \
AF_MACHINE_CPU=${cpu_model:-unknown} \
AF_MACHINE_KERNEL="$(uname -srm)" \
AF_MACHINE_ZMQ=${zmq_version:-unknown} \
AF_MACHINE_CAF=${caf_version:-not built} \
AF_BENCH_GIT=$git_rev \
AF_BENCH_DATE="$(date -u +%Y-%m-%dT%H:%MZ)" \
AF_BENCH_ARGS="${*:-(full run)}" \
AF_BENCH_REPEAT=$repeat \
AF_BENCH_TASKSET=${cpus:-none} \
	python3 - "$results" <<'PY'
import os
import statistics
import sys

WORKLOAD_ORDER = ["rtt_inproc", "tell_inproc", "rtt_ipc", "tell_ipc"]
IMPL_ORDER = ["zmq", "caf", "caf_detached", "actorflow"]
AF = "actorflow"

values = {}  # (workload, size, unit) -> impl -> [value, ...]
with open(sys.argv[1]) as f:
    for line in f:
        parts = line.split()
        if len(parts) != 6 or parts[0] != "RESULT":
            continue
        _, workload, impl, size, value, unit = parts
        try:
            key = (workload, int(size), unit)
            values.setdefault(key, {}).setdefault(impl, []).append(float(value))
        except ValueError:
            print(f"ignoring malformed line: {line.strip()}", file=sys.stderr)

# actorflow always gets a column, empty until its program exists.
impls = [i for i in IMPL_ORDER
         if i == AF or any(i in v for v in values.values())]
impls += sorted({i for v in values.values() for i in v} - set(impls))
# The ratios asked for are against zmq and caf; caf_detached shares
# actorflow's thread-per-actor model, so it gets one too when present.
BASES = ["zmq", "caf"] + (["caf_detached"] if "caf_detached" in impls else [])


def workload_rank(key):
    w, size, unit = key
    rank = WORKLOAD_ORDER.index(w) if w in WORKLOAD_ORDER else len(WORKLOAD_ORDER)
    return (rank, w, size, unit)


def fmt(x, unit):
    return f"{x:.2f}" if unit == "us" else f"{x:,.0f}"


def cell(samples, unit):
    if not samples:
        return "—"
    text = fmt(statistics.median(samples), unit)
    if len(samples) > 1:
        text += f" ({fmt(min(samples), unit)}–{fmt(max(samples), unit)})"
    return text


def ratio(by_impl, base):
    if not by_impl.get(AF) or not by_impl.get(base):
        return "—"
    b = statistics.median(by_impl[base])
    return "—" if b == 0 else f"{statistics.median(by_impl[AF]) / b:.2f}"


env = os.environ
print("## actorflow runtime benchmark\n")
print(f"- machine: {env['AF_MACHINE_NPROC']} CPUs, {env['AF_MACHINE_CPU']}, "
      f"{env['AF_MACHINE_KERNEL']}")
print(f"- libraries: {env['AF_MACHINE_ZMQ']}, {env['AF_MACHINE_CAF']}")
print(f"- run: {env['AF_BENCH_DATE']}, commit {env['AF_BENCH_GIT']}, "
      f"args `{env['AF_BENCH_ARGS']}`, repeat {env['AF_BENCH_REPEAT']}, "
      f"taskset {env['AF_BENCH_TASKSET']}")
print()
header = ["workload", "size (B)", "unit"] + impls + [f"{AF}/{b}" for b in BASES]
print("| " + " | ".join(header) + " |")
print("|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|")
for key in sorted(values, key=workload_rank):
    workload, size, unit = key
    by_impl = values[key]
    row = [workload, str(size), unit]
    row += [cell(by_impl.get(i, []), unit) for i in impls]
    row += [ratio(by_impl, b) for b in BASES]
    print("| " + " | ".join(row) + " |")
print()


def median_of(workload, impl, size):
    for (w, sz, _unit), by_impl in values.items():
        if w == workload and sz == size and by_impl.get(impl):
            return statistics.median(by_impl[impl])
    return None


# The issue's targets, checked on the medians above.
checks = []
for size in sorted({k[1] for k in values if k[0] == "rtt_inproc"}):
    a, z = median_of("rtt_inproc", AF, size), median_of("rtt_inproc", "zmq", size)
    if a and z:
        checks.append((f"rtt_inproc {size} B: actorflow/zmq <= 1.25",
                       a / z, a / z <= 1.25))
for size in sorted({k[1] for k in values if k[0] == "tell_inproc"}):
    a, z = median_of("tell_inproc", AF, size), median_of("tell_inproc", "zmq", size)
    if a and z:
        checks.append((f"tell_inproc {size} B: actorflow/zmq >= 0.75",
                       a / z, a / z >= 0.75))
lo, hi = median_of("wakeup_loop_10", AF, 0), median_of("wakeup_loop_10000", AF, 0)
if lo and hi:
    checks.append(("wake-up, 10,000 vs 10 idle fds <= 1.5", hi / lo,
                   hi / lo <= 1.5))
if checks:
    print("| target | ratio | met |")
    print("|---|---:|---|")
    for name, r, ok in checks:
        print(f"| {name} | {r:.2f} | {'yes' if ok else 'NO'} |")
    print()
print("Cells are medians over the runs, with the range in parentheses when "
      "repeated. Ratios divide actorflow's median by the other one's: for "
      "rtt_* (µs per round trip, one message in flight) lower is better, so "
      "1.50 means 50% slower; for tell_* (msg/s one-way) higher is better, so "
      "0.50 means half the throughput. caf uses CAF's shared worker pool; "
      "caf_detached gives each actor its own thread, like actorflow.")
PY
exit $failed
