#!/usr/bin/env python3
"""Streams, gather and offload, measured in one invocation.

Runs, --repeat times each, interleaved so that drift hits every program
alike:

    af_bench_runtime --workloads tell,stream --sizes 64 --only inproc
                         one-way tells and stream chunks, 64 bytes
    af_bench_gather      a gather of 10,000 echo requests against the same
                         requests issued directly by one actor
    af_bench_offload     empty jobs through the offload pool, and the
                         latency a job adds to a plain request
    asyncio_gather.py    Python's asyncio.gather of 10,000 coroutines
    asyncio_to_thread.py Python's asyncio.to_thread of 10,000 functions

and prints a markdown table of medians (ranges in parentheses) and the
targets, each a ratio of two figures of the same invocation.

usage: bench/run_concurrency_bench.py [--build-dir DIR] [--repeat N]
                                      [--raw FILE] [--quick]
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def programs(build, quick):
    b = os.path.join(build, "bench")
    tell = ["--tell-msgs", "200000" if quick else "2000000"]
    items = ["--items", "2000" if quick else "10000"]
    jobs = ["--jobs", "2000" if quick else "10000", "--iters",
            "2000" if quick else "10000"]
    py_items = ["--items", items[1]]
    return [
        [os.path.join(b, "af_bench_runtime"), "--workloads", "tell,stream",
         "--sizes", "64", "--only", "inproc"] + tell,
        [os.path.join(b, "af_bench_gather")] + items,
        [os.path.join(b, "af_bench_offload")] + jobs,
        [sys.executable, os.path.join(ROOT, "bench", "asyncio_gather.py")]
        + py_items,
        [sys.executable, os.path.join(ROOT, "bench", "asyncio_to_thread.py")]
        + jobs,
    ]


def run(cmd, raw):
    if not os.path.exists(cmd[0] if cmd[0] != sys.executable else cmd[1]):
        print(f"skipping {cmd[0]}: not built", file=sys.stderr)
        return []
    print("running " + " ".join(os.path.basename(c) for c in cmd[:2]),
          file=sys.stderr)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    rows = []
    for line in out.stdout.splitlines():
        f = line.split()
        if len(f) == 6 and f[0] == "RESULT":
            rows.append((f[1], f[2], f[3], float(f[4]), f[5]))
            if raw is not None:
                raw.write(line + "\n")
    return rows


def cell(values):
    med = statistics.median(values)
    fmt = "{:,.0f}" if med >= 1000 else "{:.2f}"
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}–" \
           f"{fmt.format(max(values))})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--raw")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()

    raw = open(args.raw, "w") if args.raw else None
    results = {}
    units = {}
    for _ in range(args.repeat):
        for cmd in programs(args.build_dir, args.quick):
            for workload, impl, size, value, unit in run(cmd, raw):
                results.setdefault((workload, impl, size), []).append(value)
                units[(workload, impl, size)] = unit

    def med(workload, impl, size=None):
        for (w, i, s), v in results.items():
            if w == workload and i == impl and (size is None or s == size):
                return statistics.median(v)
        return None

    print(f"- machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"{platform.system()} {platform.release()}")
    print(f"- python: {platform.python_version()}; repeat {args.repeat}"
          + (", --quick" if args.quick else ""))
    print()
    print("| workload | impl | size | value | unit |")
    print("|---|---|---:|---:|---|")
    for key in sorted(results):
        print(f"| {key[0]} | {key[1]} | {key[2]} | {cell(results[key])} "
              f"| {units[key]} |")
    print()

    targets = []

    def target(name, num, den, op, bound):
        if num is None or den is None or den == 0:
            targets.append((name, None, False))
            return
        ratio = num / den
        ok = ratio >= bound if op == ">=" else ratio <= bound
        targets.append((f"{name} {op} {bound}", ratio, ok))

    target("stream chunks/s / tell msgs/s (64 B, inproc)",
           med("stream_inproc", "actorflow", "64"),
           med("tell_inproc", "actorflow", "64"), ">=", 0.8)
    target("gather us/item / direct us/item",
           med("gather", "actorflow-gather"),
           med("gather", "actorflow-direct"), "<=", 1.5)
    print("| target | ratio | met |")
    print("|---|---:|---|")
    for name, ratio, ok in targets:
        shown = "—" if ratio is None else f"{ratio:.2f}"
        print(f"| {name} | {shown} | {'yes' if ok else 'no'} |")
    print()
    print("| against Python asyncio (same invocation) | actorflow | python | ratio |")
    print("|---|---:|---:|---:|")
    for name, w_af, i_af, w_py, higher in [
        ("gather, us per item", "gather", "actorflow-gather", "gather",
         False),
        ("offload, jobs/s", "offload_jobs", "actorflow", "offload_jobs",
         True),
        ("offload, us added per job", "offload_added", "actorflow",
         "offload_added", False),
    ]:
        a = med(w_af, i_af)
        p = med(w_py, "python-asyncio")
        if a is None or p is None:
            continue
        ratio = a / p if higher else p / a
        print(f"| {name} | {a:,.2f} | {p:,.2f} | {ratio:.1f}x faster |"
              if ratio >= 1 else
              f"| {name} | {a:,.2f} | {p:,.2f} | {1 / ratio:.1f}x slower |")
    if raw is not None:
        raw.close()
    return 0 if all(ok for _, _, ok in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
