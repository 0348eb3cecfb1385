#!/usr/bin/env python3
"""asyncio.gather of N requests to an echo task: the Python side of
bench_gather.c.

An echo server task takes (payload, future) pairs from an asyncio.Queue
and resolves each future with its payload at once. Each of N coroutines
puts a request {"i": i} and awaits its future; asyncio.gather collects
the replies in order. The queue holds at most 1000 requests, as an
actorflow mailbox does by default, so senders wait for room as the
gather actor does.

Rounds follow a warm-up; the median is printed in microseconds per item:
    RESULT gather python-asyncio N <us> us/item
Standard library only: python3 bench/asyncio_gather.py [--items N]
[--rounds R]
"""
import argparse
import asyncio
import statistics
import time

QUEUE_CAPACITY = 1000


async def echo_server(queue):
    while True:
        payload, future = await queue.get()
        if not future.done():
            future.set_result(payload)


async def request(queue, i):
    future = asyncio.get_running_loop().create_future()
    await queue.put(({"i": i}, future))
    return await future


async def one_round(queue, n):
    start = time.perf_counter()
    results = await asyncio.gather(*(request(queue, i) for i in range(n)))
    elapsed = time.perf_counter() - start
    if len(results) != n or results[-1]["i"] != n - 1:
        raise SystemExit("asyncio_gather: wrong results")
    return elapsed


async def main(n, rounds):
    queue = asyncio.Queue(maxsize=QUEUE_CAPACITY)
    server = asyncio.create_task(echo_server(queue))
    await one_round(queue, n)  # warm-up
    times = [await one_round(queue, n) for _ in range(rounds)]
    server.cancel()
    try:
        await server
    except asyncio.CancelledError:
        pass
    us = statistics.median(times) * 1e6 / n
    print(f"RESULT gather python-asyncio {n} {us:.3f} us/item", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if args.items < 1 or args.rounds < 1:
        parser.error("--items and --rounds must be at least 1")
    asyncio.run(main(args.items, args.rounds))
