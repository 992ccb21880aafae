"""The real-time path end to end on the local stack (`salla-pipeline dev`, real HTTP throughout).

- freshness: order webhooks sent at a steady rate; each order's time from its 200 ack until it
  is visible in `analytics.orders` (polled every 50 ms through the read-only SQL endpoint).
  Target: p99 <= 2 s (the spec allows 5 minutes).
- worker throughput: events published straight to the `raw-events` topic through the qstash SDK
  (batch API), timed until the worker has settled every one into chDB. Target >= 500 events/s.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from data_pipeline.devtools.local_secrets import local_secrets
from data_pipeline.devtools.salla_samples import StoreSimulation, encode
from data_pipeline.domain.webhook_auth import expected_signature
from qstash import AsyncQStash

from bench.processes import CLI, clean_env, free_port, process, workdir
from shared.dev_credentials import DEV_QSTASH_TOKEN
from shared.topics import RAW_EVENTS_TOPIC, WEBHOOK_PATH


def order_events(merchant_id: int, count: int) -> list[dict[str, Any]]:
    store = StoreSimulation(merchant_id=merchant_id, seed=merchant_id)
    store.create_products()
    store.create_customers(20)
    for _ in range(count):
        store.create_order()
    return [e for e in store.events if e["event"] == "order.created"]


async def freshness(
    base: str, secret: str, api_key: str, rate: float, seconds: float
) -> dict[str, float]:
    events = order_events(merchant_id=7_000_001, count=int(rate * seconds))
    acked: dict[int, float] = {}
    seen: dict[int, float] = {}
    auth = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def send(event: dict[str, Any]) -> None:
            body = encode(event)
            headers = {"X-Salla-Signature": expected_signature(body, secret.encode())}
            response = await http.post(WEBHOOK_PATH, content=body, headers=headers)
            response.raise_for_status()
            acked[event["data"]["id"]] = time.perf_counter()

        async def poll() -> None:
            while len(seen) < len(events):
                pending = [i for i in acked if i not in seen]
                if pending:
                    ids = ",".join(map(str, pending))  # integers we generated
                    query = (
                        "SELECT order_id FROM analytics.orders WHERE merchant_id = 7000001"
                        f" AND order_id IN ({ids})"
                    )
                    response = await http.post("/api/dev/sql", json={"sql": query}, headers=auth)
                    now = time.perf_counter()
                    for (order_id,) in response.json()["rows"]:
                        seen.setdefault(order_id, now)
                await asyncio.sleep(0.05)

        poller = asyncio.create_task(poll())
        started, tasks = time.perf_counter(), []
        for index, event in enumerate(events):
            delay = started + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(event)))
        await asyncio.gather(*tasks)
        await asyncio.wait_for(poller, 120)
    lags = sorted(seen[i] - acked[i] for i in acked)
    return {
        "orders": len(lags),
        "rate": rate,
        "p50_s": round(lags[len(lags) // 2], 3),
        "p99_s": round(lags[int(len(lags) * 0.99)], 3),
        "max_s": round(lags[-1], 3),
    }


async def worker_throughput(
    base: str, qstash_url: str, api_key: str, count: int
) -> dict[str, float]:
    events = [encode(e) for e in order_events(merchant_id=7_000_002, count=count)]
    client = AsyncQStash(DEV_QSTASH_TOKEN, base_url=qstash_url)
    auth = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        before = (await http.get("/api/dev/settlement", headers=auth)).json()["outcomes"]["loaded"]
        started = time.perf_counter()
        for chunk in range(0, len(events), 100):
            await client.message.batch(
                [
                    {
                        "url_group": RAW_EVENTS_TOPIC,
                        "body": body.decode(),
                        "content_type": "application/json",
                    }
                    for body in events[chunk : chunk + 100]
                ]
            )
        published = time.perf_counter() - started
        while True:
            loaded = (await http.get("/api/dev/settlement", headers=auth)).json()["outcomes"][
                "loaded"
            ]
            if loaded - before >= len(events):
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
    await client.http._client.aclose()
    return {
        "events": len(events),
        "publish_s": round(published, 2),
        "settled_s": round(elapsed, 2),
        "events_per_s": round(len(events) / elapsed, 1),
    }


def measure(rate: float = 100, seconds: float = 10, worker_events: int = 5000) -> dict[str, object]:
    with workdir() as tmp:
        port, qport = free_port(), free_port()
        command = [
            *CLI,
            "dev",
            "--port",
            str(port),
            "--qstash-port",
            str(qport),
            "--salla-port",
            str(free_port()),
            "--data-dir",
            str(tmp),
        ]
        base = f"http://127.0.0.1:{port}"
        with process(command, base + "/healthz", env=clean_env(), log=tmp / "stack.log"):
            secrets = local_secrets(Path(tmp))
            fresh = asyncio.run(
                freshness(base, secrets.webhook_secret, secrets.api_key, rate, seconds)
            )
            worker = asyncio.run(
                worker_throughput(base, f"http://127.0.0.1:{qport}", secrets.api_key, worker_events)
            )
    return {
        "freshness": fresh,
        "worker": worker,
        "targets": {
            "freshness_p99<=2s": fresh["p99_s"] <= 2.0,
            "worker>=500/s": worker["events_per_s"] >= 500,
        },
    }


def report(result: dict[str, Any]) -> str:
    fresh, worker = result["freshness"], result["worker"]
    return "\n".join(
        [
            "real-time path (local stack: QStash-compatible server + service + chDB)",
            f"  freshness at {fresh['rate']:.0f} webhooks/s, ack -> visible in analytics.orders: "
            f"p50 {fresh['p50_s']} s, p99 {fresh['p99_s']} s, max {fresh['max_s']} s "
            "(target p99 <= 2 s)",
            f"  worker: {worker['events']} events published to {RAW_EVENTS_TOPIC} in "
            f"{worker['publish_s']} s, all settled in {worker['settled_s']} s = "
            f"{worker['events_per_s']} events/s (target >= 500)",
        ]
    )


if __name__ == "__main__":
    outcome = measure()
    print(report(outcome))
    print(json.dumps(outcome))
