#!/usr/bin/env python3
"""asyncio.to_thread, measured as bench_offload.c measures the offload actor.

    offload_jobs   jobs per second: N empty functions through
                   asyncio.to_thread, all gathered at once (the default
                   executor: min(32, cores + 4) threads); median of 5 runs
                   after a warm-up.
    offload_rtt    mean microseconds for one empty to_thread at a time.
    echo_rtt       the same round trip to an "echo" task that answers at
                   once: a request on an asyncio.Queue, answered through a
                   future, as an actor's mailbox would be.
    offload_added  offload_rtt - echo_rtt.

Prints RESULT <workload> python-asyncio <size> <value> <unit> lines, as the
C benchmarks do. Standard library only. Options: --jobs N (10000),
--iters N (10000).
"""
import argparse
import asyncio
import statistics
import time

RUNS = 5


def empty():
    pass


async def burst(n):
    start = time.perf_counter_ns()
    await asyncio.gather(*(asyncio.to_thread(empty) for _ in range(n)))
    return time.perf_counter_ns() - start


async def to_thread_rtt(n):
    start = time.perf_counter_ns()
    for _ in range(n):
        await asyncio.to_thread(empty)
    return time.perf_counter_ns() - start


async def echo(mailbox):
    while True:
        reply = await mailbox.get()
        reply.set_result(None)


async def echo_rtt(n):
    loop = asyncio.get_running_loop()
    mailbox = asyncio.Queue()
    server = asyncio.create_task(echo(mailbox))
    start = time.perf_counter_ns()
    for _ in range(n):
        reply = loop.create_future()
        mailbox.put_nowait(reply)
        await reply
    elapsed = time.perf_counter_ns() - start
    server.cancel()
    try:
        await server
    except asyncio.CancelledError:
        pass
    return elapsed


async def main(jobs, iters):
    await burst(jobs)
    runs = [await burst(jobs) for _ in range(RUNS)]
    print(f"RESULT offload_jobs python-asyncio {jobs} "
          f"{jobs * 1e9 / statistics.median(runs):.0f} jobs/s", flush=True)
    await to_thread_rtt(iters // 10 + 100)
    offload_us = await to_thread_rtt(iters) / 1000 / iters
    await echo_rtt(iters // 10 + 100)
    echo_us = await echo_rtt(iters) / 1000 / iters
    print(f"RESULT offload_rtt python-asyncio 0 {offload_us:.2f} us")
    print(f"RESULT echo_rtt python-asyncio 0 {echo_us:.2f} us")
    print(f"RESULT offload_added python-asyncio 0 "
          f"{offload_us - echo_us:.2f} us")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--iters", type=int, default=10000)
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.iters))
