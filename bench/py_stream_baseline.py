#!/usr/bin/env python3
"""The Python reference for the chat actor's streaming benchmark.

N concurrent streaming chat requests with asyncio + aiohttp (Debian's
python3-aiohttp), each read the way an asyncio LLM framework reads an
OpenAI-compatible stream: line by line, Server-Sent Events "data:" lines
joined into events, json.loads on each, the delta text appended to the
answer, until "data: [DONE]".

Output, one line on stdout, like bench/curl_floor.c and bench/bench_chat.c:
  n=N ok=K failed=F wall_s=W cpu_s=C maxrss_mb=R chunks=X ttfb_med_ms=T

usage: py_stream_baseline.py --url http://127.0.0.1:PORT -n N
"""
import argparse
import asyncio
import json
import resource
import statistics
import time

import aiohttp

BODY = {
    "model": "mock",
    "messages": [{"role": "user", "content": "Say something."}],
    "stream": True,
}


async def one(session, url, start, firsts):
    answer = []
    chunks = 0
    data = []
    done = False
    async with session.post(url, json=BODY) as resp:
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}")
        async for raw in resp.content:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line.startswith(":"):
                continue
            if line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
                continue
            if line or not data:
                continue
            event = "\n".join(data)
            data = []
            if event == "[DONE]":
                done = True
                break
            chunk = json.loads(event)
            if "error" in chunk:
                raise RuntimeError(chunk["error"].get("message"))
            for choice in chunk.get("choices", []):
                text = choice.get("delta", {}).get("content")
                if text:
                    if chunks == 0:
                        firsts.append(time.monotonic() - start)
                    answer.append(text)
                    chunks += 1
    if not done:
        raise RuntimeError("stream ended without [DONE]")
    return chunks, "".join(answer)


async def main(url, n):
    start = time.monotonic()
    firsts = []
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=timeout) as session:
        results = await asyncio.gather(
            *(one(session, url + "/v1/chat/completions", start, firsts)
              for _ in range(n)),
            return_exceptions=True)
    wall = time.monotonic() - start
    failed = [r for r in results if isinstance(r, BaseException)]
    chunks = sum(r[0] for r in results if not isinstance(r, BaseException))
    ru = resource.getrusage(resource.RUSAGE_SELF)
    med = statistics.median(firsts) * 1000 if firsts else -1
    print(f"n={n} ok={n - len(failed)} failed={len(failed)} "
          f"wall_s={wall:.3f} cpu_s={ru.ru_utime + ru.ru_stime:.3f} "
          f"maxrss_mb={ru.ru_maxrss / 1024:.1f} chunks={chunks} "
          f"ttfb_med_ms={med:.3f}")
    if failed:
        print(f"first failure: {failed[0]!r}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("-n", type=int, default=100)
    a = ap.parse_args()
    raise SystemExit(asyncio.run(main(a.url, a.n)))
