"""Historical sync against the Salla Admin API emulator, on the production-shaped local stack.

`salla-pipeline dev` runs the service, the QStash-compatible server and the emulator as separate
processes; state is a real redis-server (the shared rate budget and job state of production).
A generated store with several thousand orders in the window is backfilled at the emulator's
plan limit, and the harness reports:

- rate-limit efficiency: requests per minute achieved ÷ the allowed rate (target ≥ 0.9), over
  the emulator's own first-to-last request clock; 429s as a share of requests (target < 1%);
- requests per order: every request to the order endpoints the emulator saw, retries included,
  ÷ orders loaded (target ≤ 1.05);
- transform+load share: time the service spent transforming and loading ÷ wall time (< 10%).

It also checks the warehouse against the emulator's store (orders, sums), so a fast wrong run
cannot pass as a result.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import httpx
from data_pipeline.devtools.local_secrets import local_secrets
from data_pipeline.devtools.salla_emulator.client import EmulatorClient, authorization_event
from data_pipeline.domain.webhook_auth import expected_signature

from bench.processes import CLI, clean_env, free_port, process, workdir
from shared.topics import WEBHOOK_PATH
from tests.support.redis_server import redis_server

MERCHANT = 7_300_001


async def backfill(
    base: str, salla_url: str, secret: str, api_key: str, *, orders: int, limit: int, depth: str
) -> dict[str, Any]:
    emulator = EmulatorClient(salla_url)
    auth = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await emulator.configure(rate_limit_per_minute=limit)
        tokens = await emulator.create_merchant(MERCHANT, orders=orders, seed=31)
        body = authorization_event(MERCHANT, tokens)
        headers = {"X-Salla-Signature": expected_signature(body, secret.encode())}
        (await http.post(WEBHOOK_PATH, content=body, headers=headers)).raise_for_status()
        await emulator.stats(reset=True)
        request = {"merchantId": str(MERCHANT), "depth": depth}
        for _ in range(200):  # the authorization reaches the state store through the queue
            answer = await http.post("/api/jobs/sync/initiate", json=request, headers=auth)
            if answer.status_code != 409:
                break
            await asyncio.sleep(0.05)
        answer.raise_for_status()
        started = time.perf_counter()
        job_id = answer.json()["jobId"]
        while True:
            job = (
                await http.get("/api/jobs/sync/status", params={"jobId": job_id}, headers=auth)
            ).json()
            if job["status"] in ("COMPLETED", "FAILED"):
                break
            await asyncio.sleep(0.2)
        wall = time.perf_counter() - started
        stats = await emulator.stats()
        truth = await emulator.truth(MERCHANT, job["window"]["from"], job["window"]["to"])
        query = "SELECT count(), sum(total) FROM analytics.orders WHERE merchant_id = {m:UInt64}"
        found = await http.post(
            "/api/dev/sql", json={"sql": query, "parameters": {"m": MERCHANT}}, headers=auth
        )
        [[loaded, total]] = found.json()["rows"]
    await emulator.aclose()
    counts = stats["counts"]
    order_requests = counts.get("requests:orders.list", 0) + counts.get("requests:orders.detail", 0)
    minutes = stats["elapsed_seconds"] / 60
    return {
        "status": job["status"],
        "depth": depth,
        "limit_per_minute": limit,
        "orders_loaded": job["counts"]["orders"],
        "warehouse_matches_store": loaded == truth["orders"]
        and Decimal(str(total)) == Decimal(truth["total"]),
        "requests": counts.get("requests", 0),
        "requests_429": counts.get("429", 0),
        "salla_seconds": round(stats["elapsed_seconds"], 2),
        "wall_seconds": round(wall, 2),
        "achieved_per_minute": round(counts.get("requests", 0) / minutes, 1) if minutes else 0,
        "efficiency": round(counts.get("requests", 0) / minutes / limit, 3) if minutes else 0,
        "share_429": round(counts.get("429", 0) / max(1, counts.get("requests", 0)), 4),
        "requests_per_order": round(order_requests / max(1, job["counts"]["orders"]), 4),
        "load_seconds": job["loadSeconds"],
        "load_share": round(job["loadSeconds"] / wall, 4),
    }


def measure(orders: int = 6500, limit: int = 1800, depth: str = "12m") -> dict[str, Any]:
    with workdir() as tmp, redis_server(tmp) as redis_url:
        port, qport, sport = free_port(), free_port(), free_port()
        command = [
            *CLI,
            "dev",
            "--port",
            str(port),
            "--qstash-port",
            str(qport),
            "--salla-port",
            str(sport),
            "--data-dir",
            str(tmp),
        ]
        base = f"http://127.0.0.1:{port}"
        env = clean_env(REDIS_URL=redis_url, LOG_LEVEL="WARNING")
        with process(command, base + "/healthz", env=env, log=tmp / "stack.log"):
            secrets = local_secrets(tmp)
            return asyncio.run(
                backfill(
                    base,
                    f"http://127.0.0.1:{sport}",
                    secrets.webhook_secret,
                    secrets.api_key,
                    orders=orders,
                    limit=limit,
                    depth=depth,
                )
            )


def report(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"historical sync ({result['depth']}, emulator limit {result['limit_per_minute']}/min,"
            f" redis state): {result['status']}, {result['orders_loaded']} orders, warehouse "
            f"matches the store: {result['warehouse_matches_store']}",
            f"  rate-limit efficiency {result['efficiency']:.3f} "
            f"({result['achieved_per_minute']:.0f} of {result['limit_per_minute']} requests/min "
            f"over {result['salla_seconds']} s), 429s {result['share_429']:.2%} "
            f"({result['requests_429']} of {result['requests']})",
            f"  requests per order {result['requests_per_order']:.4f}; transform+load "
            f"{result['load_seconds']:.2f} s of {result['wall_seconds']} s wall "
            f"({result['load_share']:.2%})",
        ]
    )
