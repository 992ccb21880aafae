"""Change data capture from PostgreSQL, on the local stack: lag under a sustained write rate,
and the initial snapshot against `COPY ... TO STDOUT` of the same table (the physical floor).

`python -m bench cdc`. A throwaway PostgreSQL 15 (wal_level=logical) and `salla-pipeline dev`
(local QStash server, service, chDB); the capture runs in this process exactly as
`salla-pipeline cdc run` does (drain the slot through the SQL functions, publish batches to the
`cdc-events` topic, advance), and the service applies the deliveries.

1. Lag: 100 transactions/s of 20 row changes each (10 inserts, 10 updates) = 2,000 changes/s
   for 60 s. A transaction's lag is from its commit (client side) to the first poll (every
   100 ms, through the service's SQL endpoint) that sees all its inserted rows, so a poll's
   own period (≤ 0.1 s) is part of it.
   `BENCH_CDC_LAG=0` skips it.
2. Snapshot: a 1,000,000-row table (bigint, int, text, numeric, timestamptz): `COPY ... TO
   STDOUT` timed, then our snapshot (plan key ranges, publish them; the service reads each range
   from PostgreSQL and loads it) timed until the stored versions count every row; then the view
   must show every row and equal the source (count and a sum over each column).
3. With `BENCH_CDC_SCHEDULED=<minutes>`: production's mode, the drain called by a QStash
   schedule every minute (no capture loop), 1 transaction/s; lag from commit to visible.

Differs from production: everything on 2 cores of one box (PostgreSQL, QStash server, service,
chDB and the capture compete for them), loopback instead of network, chDB instead of ClickHouse
Cloud.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
from data_pipeline.adapters.postgres_cdc import PostgresSource
from data_pipeline.adapters.qstash_queue import QStashQueue
from data_pipeline.adapters.sqlite_state import SqliteStateStore
from data_pipeline.devtools.local_postgres import postgres_server
from data_pipeline.devtools.local_secrets import local_secrets
from data_pipeline.service_layer.cdc import RANGE_ROWS, CdcCapture, keep_draining
from qstash import AsyncQStash

from bench.processes import CLI, clean_env, free_port, process, workdir
from shared.dev_credentials import DEV_QSTASH_TOKEN
from shared.topics import CDC_DRAIN_CRON, CDC_DRAIN_PATH

RATE_TXNS = 100
CHANGES_PER_TXN = 20
SECONDS = 60
SNAPSHOT_ROWS = 1_000_000
SCHEDULED_SLOT = "bench_sched"


async def _count(http: httpx.AsyncClient, auth: dict[str, str], table: str) -> int:
    response = await http.post(
        "/api/dev/sql", json={"sql": f"SELECT count() FROM oltp.{table}"}, headers=auth
    )
    if response.status_code != 200:
        return 0  # the table does not exist until the first batch lands
    return int(response.json()["rows"][0][0])


def _writer(url: str, commits: dict[int, float], stop: threading.Event) -> None:
    half = CHANGES_PER_TXN // 2
    with psycopg.connect(url, autocommit=False) as db:
        started = time.perf_counter()
        for txn in range(RATE_TXNS * SECONDS):
            delay = started + txn / RATE_TXNS - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            base = txn * half
            with db.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO lag_rows (id, txn, note) "
                    "SELECT g, %s, 'new' FROM generate_series(%s::bigint, %s::bigint) g",
                    (txn, base + 1, base + half),
                )
                if txn:
                    cursor.execute(
                        "UPDATE lag_rows SET note = 'updated', txn = %s WHERE id > %s AND id <= %s",
                        (txn, base - half, base),
                    )
            db.commit()
            commits[txn] = time.perf_counter()
            if stop.is_set():
                return


async def _lag(base: str, api_key: str, postgres: str, capture: CdcCapture) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {api_key}"}
    commits: dict[int, float] = {}
    seen: dict[int, float] = {}
    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(postgres, commits, stop))
    drainer = asyncio.create_task(keep_draining(capture, interval=0.05))
    half = CHANGES_PER_TXN // 2
    total = RATE_TXNS * SECONDS
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        writer.start()
        deadline = time.perf_counter() + SECONDS + 120
        while len(seen) < total and time.perf_counter() < deadline:
            rows = await _count(http, auth, "lag_rows")
            now = time.perf_counter()
            for txn in list(commits):
                if txn not in seen and rows >= (txn + 1) * half:
                    seen[txn] = now
            await asyncio.sleep(0.1)
    stop.set()
    writer.join()
    drainer.cancel()
    await asyncio.gather(drainer, return_exceptions=True)
    lags = sorted(seen[t] - commits[t] for t in seen)
    return {
        "transactions": total,
        "changes_per_s": RATE_TXNS * CHANGES_PER_TXN,
        "seconds": SECONDS,
        "visible": len(lags),
        "p50_s": round(lags[len(lags) // 2], 3),
        "p99_s": round(lags[int(len(lags) * 0.99)], 3),
        "max_s": round(lags[-1], 3),
    }


async def _scheduled(base: str, qstash: str, api_key: str, postgres: str) -> dict[str, Any]:
    """Production's mode: no capture loop; QStash calls the drain endpoint every minute (the
    schedule the Pulumi program declares, created here on the local QStash server) and a drain
    that reads a full bound re-publishes itself. One transaction of 10 inserts a second; each
    transaction's lag is from its commit to the first poll (every 0.5 s) that sees its rows."""
    auth = {"Authorization": f"Bearer {api_key}"}
    source = PostgresSource(postgres, ["public.sched_rows"], SCHEDULED_SLOT, SCHEDULED_SLOT)
    await asyncio.to_thread(source.setup)
    client = AsyncQStash(DEV_QSTASH_TOKEN, base_url=qstash)
    await client.schedule.create(
        destination=base + CDC_DRAIN_PATH,
        cron=CDC_DRAIN_CRON,
        body="{}",
        content_type="application/json",
        method="POST",
        retries=0,
    )
    commits: dict[int, float] = {}
    seen: dict[int, float] = {}
    minutes = int(os.environ.get("BENCH_CDC_SCHEDULED", "0"))
    with psycopg.connect(postgres, autocommit=True) as db:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            started = time.perf_counter()
            txn = 0
            while time.perf_counter() - started < minutes * 60:
                db.execute(
                    "INSERT INTO sched_rows SELECT g, %s "
                    "FROM generate_series(%s::bigint, %s::bigint) g",
                    (txn, txn * 10, txn * 10 + 9),
                )
                commits[txn] = time.perf_counter()
                txn += 1
                await _poll_seen(http, auth, commits, seen)
                await asyncio.sleep(0.5)
                await _poll_seen(http, auth, commits, seen)
                await asyncio.sleep(0.5)
            deadline = time.perf_counter() + 150  # the next tick, and one drain
            while len(seen) < len(commits) and time.perf_counter() < deadline:
                await _poll_seen(http, auth, commits, seen)
                await asyncio.sleep(0.5)
    lags = sorted(seen[t] - commits[t] for t in seen)
    return {
        "minutes": minutes,
        "transactions": len(commits),
        "visible": len(lags),
        "p50_s": round(lags[len(lags) // 2], 1),
        "p99_s": round(lags[int(len(lags) * 0.99)], 1),
        "max_s": round(lags[-1], 1),
    }


async def _poll_seen(
    http: httpx.AsyncClient, auth: dict[str, str], commits: dict[int, float], seen: dict[int, float]
) -> None:
    rows = await _count(http, auth, "sched_rows")
    now = time.perf_counter()
    for txn in commits:
        if txn not in seen and rows >= (txn + 1) * 10:
            seen[txn] = now


async def _snapshot(base: str, api_key: str, postgres: str, capture: CdcCapture) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {api_key}"}
    with psycopg.connect(postgres) as db:
        started = time.perf_counter()
        size = 0
        with db.cursor().copy("COPY big_rows TO STDOUT") as copy:
            for chunk in copy:
                size += len(chunk)
        copy_s = time.perf_counter() - started
    started = time.perf_counter()
    published = await capture.snapshot([("public", "big_rows")], batch=5000)
    assert published.ranges == SNAPSHOT_ROWS // RANGE_ROWS + 1, published  # the last one empty
    publish_s = time.perf_counter() - started
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        # Polled on the stored versions (a count from part metadata): polling the view would
        # aggregate the whole table four times a second on the same two cores. The view is
        # then read once, and must show every row.
        while await _count(http, auth, "big_rows__versions") < SNAPSHOT_ROWS:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        loaded_s = time.perf_counter() - started
        visible = await _count(http, auth, "big_rows")
    return {
        "exact": visible == SNAPSHOT_ROWS and await _same_content(base, auth, postgres),
        "rows": SNAPSHOT_ROWS,
        "ranges": published.ranges,
        "copy_s": round(copy_s, 2),
        "copy_rows_per_s": round(SNAPSHOT_ROWS / copy_s),
        "copy_mib": round(size / 2**20, 1),
        "published_s": round(publish_s, 2),
        "loaded_s": round(loaded_s, 2),
        "rows_per_s": round(SNAPSHOT_ROWS / loaded_s),
        "ratio_to_copy": round(copy_s / loaded_s, 3),
    }


async def _same_content(base: str, auth: dict[str, str], postgres: str) -> bool:
    """The loaded table against the source: the row count and a sum over each column."""
    with psycopg.connect(postgres) as db:
        [source] = db.execute(
            "SELECT count(*), sum(id), sum(a), sum(length(b)), sum(c),"
            " sum((extract(epoch FROM d) * 1000000)::bigint) FROM big_rows"
        ).fetchall()
    ours = "count(), sum(id), sum(a), sum(lengthUTF8(b)), sum(c)"
    ours += ", sum(toInt128(toUnixTimestamp64Micro(d)))"  # Int64 would overflow
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        response = await http.post(
            "/api/dev/sql", json={"sql": f"SELECT {ours} FROM oltp.big_rows"}, headers=auth
        )
    [loaded] = response.json()["rows"]
    return [Decimal(str(v)) for v in loaded] == [Decimal(str(v)) for v in source]


def _prepare(postgres: str) -> None:
    with psycopg.connect(postgres, autocommit=True) as db:
        db.execute(
            "CREATE TABLE lag_rows (id bigint PRIMARY KEY, txn int, note text);"
            "CREATE TABLE sched_rows (id bigint PRIMARY KEY, txn int);"
            "CREATE TABLE big_rows (id bigint PRIMARY KEY, a int, b text, c numeric(12, 2),"
            " d timestamptz);"
            f"INSERT INTO big_rows SELECT g, g % 1000, 'row ' || g, g / 100.0,"
            f" now() - g * interval '1 second' FROM generate_series(1, {SNAPSHOT_ROWS}) g"
        )
        db.execute("VACUUM ANALYZE big_rows")


def measure() -> dict[str, Any]:
    with workdir() as tmp, postgres_server(tmp / "pg") as postgres:
        _prepare(postgres)
        port, qport = free_port(), free_port()
        command = [*CLI, "dev", "--port", str(port), "--qstash-port", str(qport)]
        command += ["--salla-port", str(free_port()), "--data-dir", str(tmp), "--no-cdc-capture"]
        base = f"http://127.0.0.1:{port}"
        # The service reads the snapshot's key ranges itself: it gets the source, while the
        # capture runs here (as `salla-pipeline cdc run` would).
        env = clean_env(
            CDC_DATABASE_URL=postgres,
            CDC_TABLES="public.lag_rows,public.big_rows,public.sched_rows",
            CDC_SLOT=SCHEDULED_SLOT,  # what the scheduled drain reads; the others use their own
            CDC_PUBLICATION=SCHEDULED_SLOT,
        )
        with process(command, base + "/healthz", env=env, log=tmp / "stack.log"):
            api_key = local_secrets(Path(tmp)).api_key
            return asyncio.run(_run(base, f"http://127.0.0.1:{qport}", api_key, postgres, tmp))


async def _run(base: str, qstash: str, api_key: str, postgres: str, tmp: Path) -> dict[str, Any]:
    queue = QStashQueue(token=DEV_QSTASH_TOKEN, base_url=qstash, retries=3, retry_delay=None)
    state = SqliteStateStore(tmp / "capture-state.sqlite3")

    async def publish(body: bytes, dedup_id: str) -> None:
        await queue.publish_cdc_batch(body, dedup_id=dedup_id)

    try:
        lag_source = PostgresSource(postgres, ["public.lag_rows"], "bench_lag", "bench_lag")
        await asyncio.to_thread(lag_source.setup)
        lag = None
        if os.environ.get("BENCH_CDC_LAG", "1") != "0":  # 0: the snapshot only (a minute less)
            capture = CdcCapture(lag_source, publish, state, owner="b")
            lag = await _lag(base, api_key, postgres, capture)
        big_source = PostgresSource(postgres, ["public.big_rows"], "bench_big", "bench_big")
        await asyncio.to_thread(big_source.setup)
        snapshot = await _snapshot(
            base, api_key, postgres, CdcCapture(big_source, publish, state, owner="b")
        )
        scheduled = None
        if os.environ.get("BENCH_CDC_SCHEDULED", "0") != "0":  # minutes of it (3+ minutes)
            scheduled = await _scheduled(base, qstash, api_key, postgres)
    finally:
        await queue.close()
        await state.close()
    return {
        "lag": lag,
        "snapshot": snapshot,
        "scheduled": scheduled,
        "targets": {
            "lag_p99<=5s": lag["p99_s"] <= 5 if lag else None,
            "snapshot>=0.3xCOPY": snapshot["ratio_to_copy"] >= 0.3,
        },
    }


def _lag_lines(lag: dict[str, Any] | None) -> list[str]:
    if lag is None:
        return ["  lag: not measured (BENCH_CDC_LAG=0)"]
    return [
        f"  lag at {lag['changes_per_s']:,} changes/s for {lag['seconds']} s "
        f"({lag['visible']}/{lag['transactions']} transactions seen): p50 {lag['p50_s']} s, "
        f"p99 {lag['p99_s']} s, max {lag['max_s']} s (target p99 <= 5 s)",
    ]


def _scheduled_lines(scheduled: dict[str, Any] | None) -> list[str]:
    if scheduled is None:
        return ["  scheduled drain: not measured (BENCH_CDC_SCHEDULED=<minutes> measures it)"]
    return [
        f"  scheduled drain (QStash cron {CDC_DRAIN_CRON!r}, no capture loop), 1 transaction/s "
        f"for {scheduled['minutes']} min ({scheduled['visible']}/{scheduled['transactions']} "
        f"seen): lag p50 {scheduled['p50_s']} s, p99 {scheduled['p99_s']} s, "
        f"max {scheduled['max_s']} s (bound: the 60 s period plus one drain)"
    ]


def report(result: dict[str, Any]) -> str:
    lag, snap = result["lag"], result["snapshot"]
    return "\n".join(
        [
            "change data capture (PostgreSQL 15 -> capture -> local QStash -> service -> chDB)",
            *_lag_lines(lag),
            f"  snapshot of {snap['rows']:,} rows: {snap['loaded_s']} s = {snap['rows_per_s']:,} "
            f"rows/s; COPY TO STDOUT {snap['copy_s']} s = {snap['copy_rows_per_s']:,} rows/s "
            f"({snap['copy_mib']} MiB); ratio {snap['ratio_to_copy']} (target >= 0.3); "
            f"loaded table equals the source: {snap['exact']}",
            *_scheduled_lines(result["scheduled"]),
        ]
    )


if __name__ == "__main__":
    print(report(measure()))
