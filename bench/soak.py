"""Crash soak: sustained signed webhooks (with duplicates) and a historical sync while the
service, the local queue server, or both are SIGKILLed at random and restarted; then the
warehouse is compared with the generator's ground truth exactly.

`python -m bench soak` (`BENCH_SOAK_MINUTES`, default 10; `tests/e2e/test_soak.py` runs one
minute in `make test`). Real processes: `salla-pipeline qstash-dev` (durable SQLite store),
`salla-pipeline salla-emulator` (Salla's side: never killed) and `salla-pipeline dev` pointed
at both (the service with chDB and SQLite state in its data dir). The generator behaves like
Salla: it re-sends a webhook until it is answered 200 (Salla retries failed webhooks), so an
event counts as accepted at its first 200 and must then be in the warehouse exactly once.

Differs from production: QStash's retries are compressed in time here (15, backing off from
250 ms to 4 s: about 50 s in all; production: the plan's retries over about half an hour) so
that a run of a minute sees outages, retries and recoveries; kills come every 6-12 s, far more
often than instances die, and are SIGKILL, harsher than a Lambda instance being frozen or
recycled. A historical sync step does up to 15 s of work before it saves its cursor, so a
step cut short by a kill is redone (its lease, held by the killed process, sends the next
delivery back for later instead of burning its retries).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from data_pipeline.devtools.demo import DemoClient, DemoStack, free_port, merchant_totals
from data_pipeline.devtools.local_secrets import local_secrets
from data_pipeline.devtools.local_stack import LOCAL_SALLA_CLIENT_ID, LOCAL_SALLA_CLIENT_SECRET
from data_pipeline.devtools.salla_emulator.client import EmulatorClient, authorization_event
from data_pipeline.devtools.salla_samples import StoreSimulation, delivery_schedule

from bench.processes import workdir
from shared.contract import env_var_names
from shared.dev_credentials import (
    DEV_QSTASH_CURRENT_SIGNING_KEY,
    DEV_QSTASH_NEXT_SIGNING_KEY,
    DEV_QSTASH_TOKEN,
)

WEBHOOK_MERCHANT = 1_305_777_001
SYNC_MERCHANT = 1_305_777_002
CLI = [sys.executable, "-m", "data_pipeline.entrypoints.cli"]


@dataclass
class Child:
    name: str
    command: list[str]
    env: dict[str, str]
    health: str
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()

    async def healthy(self, within: float = 90) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=1) as http:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited ({self.process.returncode}): {self.log}"
                    )
                try:
                    if (await http.get(self.health)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not come up: {self.log}")
                await asyncio.sleep(0.05)


@dataclass
class SoakResult:
    seconds: float = 0.0
    sent: int = 0  # webhook requests, retries included
    accepted: int = 0  # distinct webhook bodies answered 200
    kills: dict[str, int] = field(default_factory=dict)
    recoveries: list[float] = field(default_factory=list)
    lost: int = 0  # accepted order events whose order is missing or wrong in the contract
    duplicated: int = 0  # rows beyond one per order / line item in the contract
    webhook_exact: bool = False
    sync_status: str = ""
    sync_exact: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            not self.problems
            and self.lost == 0
            and self.duplicated == 0
            and self.webhook_exact
            and self.sync_exact
        )


class SoakStack:
    def __init__(self, root: Path) -> None:
        self.root = root
        ports = {name: free_port() for name in ("service", "queue", "salla")}
        self.url = f"http://127.0.0.1:{ports['service']}"
        self.salla_url = f"http://127.0.0.1:{ports['salla']}"
        base = {k: v for k, v in os.environ.items() if k not in env_var_names()}
        base |= {
            "QSTASH_TOKEN": DEV_QSTASH_TOKEN,
            "QSTASH_CURRENT_SIGNING_KEY": DEV_QSTASH_CURRENT_SIGNING_KEY,
            "QSTASH_NEXT_SIGNING_KEY": DEV_QSTASH_NEXT_SIGNING_KEY,
            "SALLA_CLIENT_ID": LOCAL_SALLA_CLIENT_ID,
            "SALLA_CLIENT_SECRET": LOCAL_SALLA_CLIENT_SECRET,
        }
        queue = f"http://127.0.0.1:{ports['queue']}"
        self.queue = Child(
            "queue server",
            [
                *CLI,
                "qstash-dev",
                "--port",
                str(ports["queue"]),
                "--data-dir",
                str(root / "queue"),
                "--quiet",
            ],
            base,
            queue + "/healthz",
            root / "queue.log",
        )
        self.salla = Child(
            "Salla emulator",
            [*CLI, "salla-emulator", "--port", str(ports["salla"]), "--quiet"],
            base,
            self.salla_url + "/healthz",
            root / "salla.log",
        )
        self.service = Child(
            "service",
            [*CLI, "dev", "--port", str(ports["service"]), "--data-dir", str(root / "data")],
            base
            | {
                "QSTASH_URL": queue,
                "SALLA_API_BASE_URL": f"{self.salla_url}/admin/v2",
                "SALLA_OAUTH_TOKEN_URL": f"{self.salla_url}/oauth2/token",
                "RAG_ENABLED": "false",
                "QSTASH_RETRIES": "15",
                "QSTASH_RETRY_DELAY": "min(4000, 250 * pow(2, retried))",
                "LOG_LEVEL": "WARNING",
            },
            self.url + "/healthz",
            root / "service.log",
        )

    async def start(self) -> None:
        for child in (self.salla, self.queue, self.service):
            child.start()
            await child.healthy()

    def stop(self) -> None:
        for child in (self.service, self.queue, self.salla):
            child.stop()

    def client(self) -> DemoClient:
        secrets = local_secrets((self.root / "data").resolve())
        assert self.service.process is not None
        stack = DemoStack(
            self.service.process,
            self.url,
            secrets.api_key,
            secrets.webhook_secret,
            self.service.log,
            self.salla_url,
        )
        return DemoClient(stack)


async def _send_until_accepted(
    client: DemoClient, body: bytes, result: SoakResult, accepted: set[bytes]
) -> None:
    while True:
        result.sent += 1
        try:
            status, _ = await client.send(body)
        except httpx.HTTPError:
            status = 0
        if status == 200:
            accepted.add(body)
            return
        await asyncio.sleep(0.2)  # Salla retries a failed webhook later


async def _generate(
    client: DemoClient, deliveries: list[bytes], seconds: float, result: SoakResult
) -> set[bytes]:
    """Spread the deliveries evenly over `seconds`, each re-sent until accepted."""
    accepted: set[bytes] = set()
    interval = seconds / max(1, len(deliveries))
    tasks = []
    for body in deliveries:
        tasks.append(asyncio.create_task(_send_until_accepted(client, body, result, accepted)))
        await asyncio.sleep(interval)
    await asyncio.gather(*tasks)
    return accepted


async def _kill_at_random(
    stack: SoakStack, until: float, rng: random.Random, result: SoakResult
) -> None:
    while True:
        await asyncio.sleep(rng.uniform(6.0, 12.0))
        if time.monotonic() > until:
            return
        kind = rng.choice(["service", "queue", "stack"])
        victims = {"service": [stack.service], "queue": [stack.queue]}.get(
            kind, [stack.queue, stack.service]
        )
        started = time.monotonic()
        for child in victims:
            child.kill()
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        for child in sorted(victims, key=lambda c: c is stack.service):  # queue first
            child.start()
            await child.healthy()
        result.kills[kind] = result.kills.get(kind, 0) + 1
        result.recoveries.append(time.monotonic() - started)


async def _sync(
    client: DemoClient, salla: EmulatorClient, result: SoakResult, last: dict[str, Any]
) -> dict[str, Any]:
    """Authorize a store and backfill 12 months; resubmitted like the app would on errors."""
    tokens = await salla.create_merchant(SYNC_MERCHANT, orders=160, seed=21)
    await _send_until_accepted(client, authorization_event(SYNC_MERCHANT, tokens), result, set())
    job_id = None
    while job_id is None:  # 409 until the authorization has gone through the queue
        try:
            job = await client.api(
                "POST",
                "/api/jobs/sync/initiate",
                json={"merchantId": str(SYNC_MERCHANT), "depth": "12m"},
            )
            job_id = job["jobId"]
        except httpx.HTTPError:
            await asyncio.sleep(0.5)
    while True:
        try:
            job = await client.api("GET", "/api/jobs/sync/status", params={"jobId": job_id})
        except httpx.HTTPError:
            await asyncio.sleep(0.5)
            continue
        last.update(job)
        if job["status"] in ("COMPLETED", "FAILED"):
            return job
        await asyncio.sleep(0.5)


async def _compare(
    client: DemoClient,
    store: StoreSimulation,
    salla: EmulatorClient,
    job: dict[str, Any],
    result: SoakResult,
    within: float,
) -> None:
    """Wait for quiet (the contract stops changing towards the truth), then compare exactly."""
    truth = store.truth
    want = {
        "orders": len(truth.live_orders()),
        "total": truth.order_total_sum(),
        "lines": truth.line_count(),
        "line_total": truth.line_total_sum(),
        "products": len([p for p in truth.products.values() if not p["deleted"]]),
        "customers": len(truth.customers),
    }
    deadline = time.monotonic() + within
    while True:
        found = await merchant_totals(client, WEBHOOK_MERCHANT)
        got = {
            k: (Decimal(str(v)) if k in ("total", "line_total") else v) for k, v in found.items()
        }
        if got == want or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    result.webhook_exact = got == want
    if not result.webhook_exact:
        result.problems.append(f"webhook merchant: warehouse {got} != truth {want}")
    [[orders_found]] = await client.sql(
        "SELECT count() FROM analytics.orders WHERE merchant_id = {m:UInt64}", m=WEBHOOK_MERCHANT
    )
    result.lost = max(0, want["orders"] - orders_found)
    [[order_dupes]] = await client.sql(
        "SELECT count() - uniqExact(merchant_id, order_id) FROM analytics.orders"
    )
    [[line_dupes]] = await client.sql(
        "SELECT count() - uniqExact(merchant_id, order_id, item_id) FROM analytics.sales_facts"
    )
    result.duplicated = order_dupes + line_dupes
    result.sync_status = job["status"]
    if "window" not in job:
        return
    sync_truth = await salla.truth(SYNC_MERCHANT, job["window"]["from"], job["window"]["to"])
    synced = await merchant_totals(client, SYNC_MERCHANT)
    result.sync_exact = job["status"] == "COMPLETED" and (
        synced["orders"],
        Decimal(str(synced["total"])),
        synced["lines"],
        synced["products"],
        synced["customers"],
    ) == (
        sync_truth["orders"],
        Decimal(sync_truth["total"]),
        sync_truth["line_items"],
        sync_truth["products"],
        sync_truth["customers"],
    )
    if not result.sync_exact:
        result.problems.append(f"sync {job['status']}: warehouse {synced} != truth {sync_truth}")


async def soak(seconds: float, root: Path, *, seed: int = 1) -> SoakResult:
    rng = random.Random(seed)
    result = SoakResult(seconds=seconds)
    stack = SoakStack(root)
    try:
        await stack.start()
    except BaseException:
        stack.stop()  # the children that did start
        raise
    client = stack.client()
    salla = EmulatorClient(stack.salla_url)
    # About 6 webhooks a second, a third of them duplicates, shuffled.
    store = StoreSimulation(merchant_id=WEBHOOK_MERCHANT, seed=seed)
    store.create_products()
    store.create_customers(40)
    while len(store.events) < seconds * 4:
        store.create_order()
    deliveries = delivery_schedule(store.events, duplicate_share=0.3, seed=seed)
    try:
        until = time.monotonic() + seconds
        last_job: dict[str, Any] = {}
        sync = asyncio.create_task(_sync(client, salla, result, last_job))
        generated = asyncio.create_task(_generate(client, deliveries, seconds, result))
        await _kill_at_random(stack, until, rng, result)
        accepted = await generated
        result.accepted = len(accepted)
        try:
            job = await asyncio.wait_for(sync, timeout=300)
        except TimeoutError:
            dead = await _dead_letters(stack)
            result.problems.append(f"sync did not finish: {last_job}; DLQ: {dead}")
            job = {**last_job, "status": f"STUCK ({last_job.get('status')})"}
        await _compare(client, store, salla, job, result, within=180)
    finally:
        await salla.aclose()
        await client.aclose()
        stack.stop()
    return result


async def _dead_letters(stack: SoakStack) -> list[str]:
    from qstash import AsyncQStash

    queue = AsyncQStash(DEV_QSTASH_TOKEN, base_url=stack.queue.health.removesuffix("/healthz"))
    page = await queue.dlq.list()
    return [f"{m.url} {m.response_status} {str(m.response_body)[:200]}" for m in page.messages]


def measure(minutes: float | None = None) -> dict[str, Any]:
    minutes = minutes or float(os.environ.get("BENCH_SOAK_MINUTES", "10"))
    with workdir() as tmp:
        result = asyncio.run(soak(minutes * 60, tmp))
    return {
        "minutes": minutes,
        "sent": result.sent,
        "accepted": result.accepted,
        "lost": result.lost,
        "duplicated": result.duplicated,
        "kills": result.kills,
        "kills_survived": sum(result.kills.values()),
        "max_recovery_s": round(max(result.recoveries, default=0.0), 2),
        "webhook_exact": result.webhook_exact,
        "sync": result.sync_status,
        "sync_exact": result.sync_exact,
        "passed": result.passed,
        "problems": result.problems,
    }


def report(result: dict[str, Any]) -> str:
    kills = ", ".join(f"{n} {kind}" for kind, n in sorted(result["kills"].items()))
    return (
        f"soak {result['minutes']} min: {result['sent']:,} webhook requests, "
        f"{result['accepted']:,} accepted, lost {result['lost']}, duplicated "
        f"{result['duplicated']}; {result['kills_survived']} kills survived ({kills}), max "
        f"recovery {result['max_recovery_s']} s; warehouse exact: {result['webhook_exact']}; "
        f"historical sync {result['sync']}, exact: {result['sync_exact']}"
        + (f"; PROBLEMS: {result['problems']}" if result["problems"] else "")
    )


if __name__ == "__main__":
    print(report(measure()))
