"""A small HTTP/1.1 load generator over raw asyncio streams (keep-alive, no client library).

Two modes, the same for every target so ratios are fair:
- closed loop (`peak`): each connection sends back-to-back; reports the throughput ceiling.
- open loop (`rate`): requests are *scheduled* at a constant rate and latency is measured from
  the scheduled time, so a slow server cannot hide its queueing (no coordinated omission).

Runs in its own process (`python -m bench.loadgen ...`) so it does not share the server's
event loop; prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections.abc import Sequence
from urllib.parse import urlsplit


def build_request(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        f"Content-Length: {len(body)}",
        "Connection: keep-alive",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


def percentile(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


async def run(
    url: str, requests: list[bytes], mode: str, connections: int, duration: float, rate: float
) -> dict[str, float]:
    parts = urlsplit(url)
    streams = [
        await asyncio.open_connection(parts.hostname, parts.port) for _ in range(connections)
    ]
    sent = itertools.count(1)
    cycle = itertools.cycle(requests)

    def next_payload() -> bytes:
        next(sent)
        return next(cycle)

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    started = time.perf_counter()
    deadline = started + duration

    async def closed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            writer.write(next_payload())
            status = await read_response(reader)
            latencies.append(time.perf_counter() - sent)
            statuses[status] = statuses.get(status, 0) + 1

    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for stream in streams:
        idle.put_nowait(stream)

    async def scheduled(at: float) -> None:
        reader, writer = await idle.get()
        writer.write(next_payload())
        status = await read_response(reader)
        latencies.append(time.perf_counter() - at)  # from the scheduled start
        statuses[status] = statuses.get(status, 0) + 1
        idle.put_nowait((reader, writer))

    if mode == "peak":
        await asyncio.gather(*(closed(r, w) for r, w in streams))
    else:
        tasks, count = [], int(duration * rate)
        for index in range(count):
            at = started + index / rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(scheduled(at)))
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    for _, writer in streams:
        writer.close()
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 3),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p90_ms": round(percentile(latencies, 0.90) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else float("nan"),
        "non_200": sum(n for s, n in statuses.items() if s != 200),
        # Requests that re-sent a body already sent in this run (the file ran out).
        "repeats": max(0, next(sent) - 1 - len(requests)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("requests_file", help="JSON lines: {path, body, headers}")
    parser.add_argument("--mode", choices=["peak", "rate"], default="peak")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=100.0)
    args = parser.parse_args()
    host = urlsplit(args.url).netloc
    prepared = []
    with open(args.requests_file, encoding="utf-8") as handle:
        for line in handle:
            spec = json.loads(line)
            prepared.append(
                build_request(host, spec["path"], spec["body"].encode(), spec["headers"])
            )
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(
        run(args.url, prepared, args.mode, args.connections, args.duration, args.rate)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
