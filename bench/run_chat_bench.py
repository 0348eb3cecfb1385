#!/usr/bin/env python3
"""The chat actor's streaming benchmark, with its two references.

For each load (N concurrent streamed chats, 50 chunks each: N = 100 and
1,000 at 20 ms between chunks, N = 10,000 at 200 ms), starts a
mockllm_server in its own process and runs, one after another against it:

    curl_floor            the floor: libcurl's multi_socket_action on epoll,
                          counting bytes (no parsing, no actors)
    bench_chat            one chat actor (openai provider) driven by an actor
    py_stream_baseline.py asyncio + aiohttp, parsing SSE and JSON

each --repeat times, interleaved, and records wall seconds, CPU seconds and
peak RSS of the client process, the median time to first chunk, and the
server's CPU seconds for the whole load. Prints a markdown table of medians
and the targets as ratios within the same invocation, and with --plot FILE
draws CPU and wall time against N (matplotlib).

usage: bench/run_chat_bench.py [--build-dir DIR] [--repeat N] [--quick]
                               [--plot FILE] [--json FILE]
                               [--loads 100:20,1000:20,...]
Run it with Debian's python3 (python3-aiohttp, python3-matplotlib).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHUNKS = 50
# The reference is Debian's python3 with Debian's python3-aiohttp, which
# another python3 earlier on PATH may not see.
DEBIAN_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
    else sys.executable


def parse_line(text):
    for line in text.splitlines():
        if "wall_s=" in line:
            return {k: v for k, v in
                    (f.split("=", 1) for f in line.split() if "=" in f)}
    raise RuntimeError("no result line in:\n" + text)


class Server:
    def __init__(self, build, interval_ms):
        exe = os.path.join(build, "tests", "mockllm", "mockllm_server")
        self.p = subprocess.Popen(
            [exe, "--port", "0", "--chunks", str(CHUNKS),
             "--interval-ms", str(interval_ms), "--threads", "1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        first = self.p.stdout.readline().split()
        if len(first) != 2 or first[0] != "port":
            raise RuntimeError("mockllm_server did not start")
        self.url = f"http://127.0.0.1:{first[1]}"

    def stop(self):
        self.p.stdin.close()
        out = self.p.stdout.read()
        self.p.wait(timeout=30)
        for line in out.splitlines():
            if line.startswith("cpu_s"):
                return float(line.split()[1])
        return float("nan")


def clients(build, url, n):
    b = os.path.join(build, "bench")
    return {
        "floor": [os.path.join(b, "curl_floor"), "--url", url,
                  "-n", str(n)],
        "actorflow": [os.path.join(b, "af_bench_chat"), "--url", url,
                      "-n", str(n)],
        "python": [DEBIAN_PYTHON,
                   os.path.join(ROOT, "bench", "py_stream_baseline.py"),
                   "--url", url, "-n", str(n)],
    }


def measure(build, n, interval, impl):
    server = Server(build, interval)
    try:
        cmd = clients(build, server.url, n)[impl]
        out = subprocess.run(cmd, capture_output=True, text=True,
                             timeout=600)
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            raise RuntimeError(f"{impl} failed at N={n}")
        row = parse_line(out.stdout)
    finally:
        row_server = server.stop()
    row["server_cpu_s"] = row_server
    return row


def med(rows, key):
    vals = [float(r[key]) for r in rows if key in r]
    return statistics.median(vals) if vals else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true",
                    help="small loads, to check the harness")
    ap.add_argument("--loads", default=None,
                    help="N:interval_ms pairs, comma-separated")
    ap.add_argument("--impls", default="floor,actorflow,python")
    ap.add_argument("--plot", default=None)
    ap.add_argument("--json", default=None,
                    help="also write every run's figures to this file")
    a = ap.parse_args()

    if a.loads:
        loads = [tuple(int(x) for x in p.split(":"))
                 for p in a.loads.split(",")]
    elif a.quick:
        loads = [(20, 5), (100, 5)]
    else:
        loads = [(100, 20), (1000, 20), (10000, 200)]
    impls = a.impls.split(",")
    results = {}
    for n, interval in loads:
        for rep in range(a.repeat):
            for impl in impls:
                print(f"N={n} interval={interval}ms {impl} run {rep + 1}",
                      file=sys.stderr)
                results.setdefault((n, impl), []).append(
                    measure(a.build_dir, n, interval, impl))

    if a.json:
        with open(a.json, "w") as f:
            json.dump({f"{n} {impl}": rows
                       for (n, impl), rows in results.items()}, f, indent=1)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{platform.system()} {platform.release()}; "
          f"{CHUNKS} chunks per stream; medians of {a.repeat} runs\n")
    print("| N | interval | client | wall s (ideal) | CPU s | peak MB | "
          "first chunk ms (p50) | server CPU s | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, interval in loads:
        ideal = CHUNKS * interval / 1000
        for impl in impls:
            rows = results[(n, impl)]
            print(f"| {n:,} | {interval} ms | {impl} | "
                  f"{med(rows, 'wall_s'):.2f} ({ideal:.0f}) | "
                  f"{med(rows, 'cpu_s'):.2f} | {med(rows, 'maxrss_mb'):.0f} | "
                  f"{med(rows, 'ttfb_med_ms'):.2f} | "
                  f"{med(rows, 'server_cpu_s'):.2f} | "
                  f"{int(max(float(r.get('failed', 0)) for r in rows))} |")
    if {"floor", "actorflow"} <= set(impls):
        print("\n| N | wall / ideal | CPU / floor | CPU / Python | "
              "peak MB / Python | first chunk over floor, ms |")
        print("|---|---|---|---|---|---|")
        for n, interval in loads:
            af = results[(n, "actorflow")]
            fl = results[(n, "floor")]
            py = results.get((n, "python"))
            ideal = CHUNKS * interval / 1000
            line = (f"| {n:,} | {med(af, 'wall_s') / ideal:.3f} | "
                    f"{med(af, 'cpu_s') / med(fl, 'cpu_s'):.2f} | ")
            if py:
                line += (f"{med(af, 'cpu_s') / med(py, 'cpu_s'):.2f} | "
                         f"{med(af, 'maxrss_mb') / med(py, 'maxrss_mb'):.2f} | ")
            else:
                line += "– | – | "
            line += (f"{med(af, 'ttfb_med_ms') - med(fl, 'ttfb_med_ms'):.2f}"
                     " |")
            print(line)
    if a.plot:
        plot(a.plot, loads, impls, results)


def plot(path, loads, impls, results):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [n for n, _ in loads]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for impl in impls:
        ax1.plot(ns, [med(results[(n, impl)], "cpu_s") for n in ns],
                 marker="o", label=impl)
        ax2.plot(ns, [med(results[(n, impl)], "wall_s") for n in ns],
                 marker="o", label=impl)
    ax2.plot(ns, [CHUNKS * i / 1000 for _, i in loads], linestyle="--",
             color="grey", label="ideal")
    for ax, title in ((ax1, "client CPU seconds"), (ax2, "wall seconds")):
        ax.set_xscale("log")
        ax.set_xlabel("concurrent streams (N)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("N streamed chats of 50 chunks against a mock server")
    fig.tight_layout()
    fig.savefig(path)
    print(f"\nplot: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
