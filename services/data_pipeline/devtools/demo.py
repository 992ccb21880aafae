"""`make demo`: the whole local stack with realistic Salla activity pushed through it.

Starts `salla-pipeline dev` as a subprocess (chDB locks its directory, so the demo reads the
warehouse through the running service). Real-time path: sends signed webhooks the way Salla
would (duplicated, out of order), waits until every accepted event is settled, prints what
landed and checks it against the simulated store. Historical sync: a second merchant authorizes
the app, and a 12-month backfill runs against the Salla Admin API emulator under a Special-plan
rate limit, with its progress shown as it goes and its result checked against the emulator's own
data. Finally the stack is stopped with SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from data_pipeline.devtools.local_postgres import postgres_server
from data_pipeline.devtools.local_secrets import local_secrets
from data_pipeline.devtools.salla_emulator.client import EmulatorClient, authorization_event
from data_pipeline.devtools.salla_samples import (
    CATALOG,
    StoreSimulation,
    delivery_schedule,
    demo_store,
)
from data_pipeline.devtools.serving import wait_until_healthy
from data_pipeline.domain.webhook_auth import expected_signature
from shared.contract import env_var_names
from shared.topics import WEBHOOK_PATH


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DemoStack:
    process: subprocess.Popen[bytes]
    url: str
    api_key: str
    webhook_secret: str
    log_path: Path
    salla_url: str

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_stack(
    data_dir: Path, console: Console, extra_env: dict[str, str] | None = None
) -> DemoStack:
    """A local stack on free ports, isolated from any cloud settings in the caller's env."""
    port, qstash_port, salla_port = free_port(), free_port(), free_port()
    embeddings_port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in env_var_names()}
    env.update(extra_env or {})
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "demo-stack.log"
    command = [
        sys.executable,
        "-m",
        "data_pipeline.entrypoints.cli",
        "dev",
        "--port",
        str(port),
        "--qstash-port",
        str(qstash_port),
        "--salla-port",
        str(salla_port),
        "--embeddings-port",
        str(embeddings_port),
        "--data-dir",
        str(data_dir),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    url = f"http://127.0.0.1:{port}"
    with console.status("starting the local stack (QStash server, Salla emulator, service)…"):
        try:
            wait_until_healthy(url + "/healthz", process)
        except RuntimeError as error:
            process.kill()
            raise RuntimeError(f"{error}; see {log_path}") from None
    secrets = local_secrets(data_dir.resolve())
    return DemoStack(
        process,
        url,
        secrets.api_key,
        secrets.webhook_secret,
        log_path,
        f"http://127.0.0.1:{salla_port}",
    )


class DemoClient:
    def __init__(self, stack: DemoStack) -> None:
        self.stack = stack
        self.http = httpx.AsyncClient(base_url=stack.url, timeout=30)

    async def send(self, body: bytes) -> tuple[int, float]:
        signature = expected_signature(body, self.stack.webhook_secret.encode())
        started = time.perf_counter()
        response = await self.http.post(
            WEBHOOK_PATH,
            content=body,
            headers={"X-Salla-Signature": signature, "Content-Type": "application/json"},
        )
        return response.status_code, time.perf_counter() - started

    async def sql(self, query: str, **parameters: Any) -> list[list[Any]]:
        response = await self.http.post(
            "/api/dev/sql",
            json={"sql": query, "parameters": parameters},
            headers={"Authorization": f"Bearer {self.stack.api_key}"},
        )
        response.raise_for_status()
        rows: list[list[Any]] = response.json()["rows"]
        return rows

    async def settlement(self) -> dict[str, Any]:
        response = await self.http.get(
            "/api/dev/settlement", headers={"Authorization": f"Bearer {self.stack.api_key}"}
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def api(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = await self.http.request(
            method, path, headers={"Authorization": f"Bearer {self.stack.api_key}"}, **kwargs
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def aclose(self) -> None:
        await self.http.aclose()


async def push_events(client: DemoClient, deliveries: list[bytes], console: Console) -> list[float]:
    latencies: list[float] = []
    failures: list[int] = []
    semaphore = asyncio.Semaphore(16)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("sending signed webhooks", total=len(deliveries))

        async def one(body: bytes) -> None:
            async with semaphore:
                status, seconds = await client.send(body)
            (latencies if status == 200 else failures).append(seconds if status == 200 else status)
            progress.advance(task)

        await asyncio.gather(*(one(body) for body in deliveries))
    if failures:
        raise RuntimeError(f"{len(failures)} webhooks were not accepted: {sorted(set(failures))}")
    return latencies


async def wait_settled(client: DemoClient, expected: int, console: Console) -> dict[str, Any]:
    with console.status("waiting until every accepted event is settled…"):
        deadline = time.monotonic() + 120
        while True:
            state = await client.settlement()
            if state["accepted"] >= expected and state["settled"] >= state["accepted"]:
                return state
            if time.monotonic() > deadline:
                raise RuntimeError(f"events did not settle: {state}")
            await asyncio.sleep(0.1)


def _money(value: Any) -> str:
    return f"{Decimal(str(value)):,.2f}"


async def show_warehouse(client: DemoClient, console: Console) -> None:
    orders = await client.sql(
        "SELECT reference_id, status, total, currency, city, payment_method,"
        " formatDateTime(created_at, '%Y-%m-%d %H:%i', 'Asia/Riyadh')"
        " FROM analytics.orders ORDER BY created_at DESC LIMIT 10"
    )
    table = Table(title="analytics.orders (latest 10, Riyadh time)")
    for column in ("ref", "status", "total", "cur", "city", "payment", "created"):
        table.add_column(column, justify="right" if column == "total" else "left")
    for ref, status, total, currency, city, payment, created in orders:
        table.add_row(str(ref), status, _money(total), currency, city, payment, created)
    console.print(table)

    days = await client.sql(
        "SELECT toDate(created_at, 'Asia/Riyadh') AS day, count(), sum(total)"
        " FROM analytics.orders WHERE status NOT IN ('canceled', 'refunded')"
        " GROUP BY day ORDER BY day"
    )
    table = Table(title="Revenue per day (excluding canceled and refunded orders)")
    for column in ("day", "orders", "revenue (SAR)"):
        table.add_column(column, justify="left" if column == "day" else "right")
    for day, count, revenue in days:
        table.add_row(day, str(count), _money(revenue))
    console.print(table)

    products = await client.sql(
        "SELECT any(name), any(sku), sum(quantity) AS units, sum(line_total) AS revenue"
        " FROM analytics.sales_facts WHERE order_status NOT IN ('canceled', 'refunded')"
        " GROUP BY product_id ORDER BY revenue DESC LIMIT 8"
    )
    table = Table(title="Top products by revenue (analytics.sales_facts)")
    for column in ("product", "sku", "units", "revenue (SAR)"):
        table.add_column(
            column, justify="right" if column in ("units", "revenue (SAR)") else "left"
        )
    for name, sku, units, revenue in products:
        table.add_row(name, sku, str(Decimal(str(units)).normalize()), _money(revenue))
    console.print(table)


async def check_against_truth(client: DemoClient, store: StoreSimulation, console: Console) -> bool:
    truth = store.truth
    found = await merchant_totals(client, store.merchant_id)
    [[carts]] = await client.sql(
        "SELECT count() FROM analytics.abandoned_carts WHERE merchant_id = {m:UInt64}",
        m=store.merchant_id,
    )
    orders, order_sum = found["orders"], found["total"]
    lines, line_sum, products = found["lines"], found["line_total"], found["products"]
    live_products = [p for p in truth.products.values() if not p["deleted"]]
    model = await analytics_figures(client, store.merchant_id)
    checks = [
        ("orders (non-deleted)", len(truth.live_orders()), orders),
        ("sum of order totals", truth.order_total_sum(), Decimal(str(order_sum))),
        ("line items (drafts are not sales)", truth.line_count(), lines),
        ("sum of line totals", truth.line_total_sum(), Decimal(str(line_sum))),
        ("products (non-deleted)", len(live_products), products),
        ("abandoned carts", len(truth.carts), carts),
        ("carts recovered", len(truth.recovered_carts()), model["recovered"]),
        ("gross margin (price - cost)", truth.gross_margin(), model["margin"]),
        ("units sold of the large size", truth.variant_units(), model["variants"]),
        ("tax invoices", len(truth.invoices), model["invoices"]),
        ("shipments delivered", _delivered(truth), model["delivered"]),
        ("reviews (texts naming a person withheld)", _reviews(truth), model["reviews"]),
    ]
    return compare("Warehouse vs. the simulated store", checks, console)


def _delivered(truth: Any) -> int:
    return sum(1 for s in truth.shipments.values() if s["delivered_at"] is not None)


def _reviews(truth: Any) -> str:
    withheld = sum(1 for r in truth.reviews if r["content"] is None)
    return f"{len(truth.reviews)} ({withheld} withheld)"


async def analytics_figures(client: DemoClient, merchant_id: int) -> dict[str, Any]:
    """What the merchant analytics model answers: recovery, margin, variants, fulfilment."""
    m = {"m": merchant_id}
    [[recovered]] = await client.sql(
        "SELECT countIf(status = 'purchased') FROM analytics.abandoned_carts"
        " WHERE merchant_id = {m:UInt64}",
        **m,
    )
    [[margin]] = await client.sql(
        "SELECT sum((f.unit_price - p.cost_price) * f.quantity) FROM analytics.sales_facts AS f"
        " INNER JOIN analytics.products AS p"
        " ON f.merchant_id = p.merchant_id AND f.product_id = p.product_id"
        " WHERE f.merchant_id = {m:UInt64}",
        **m,
    )
    variants = await client.sql(
        "SELECT variant_key, sum(quantity) FROM analytics.sales_facts"
        " WHERE merchant_id = {m:UInt64} AND variant_key != '' GROUP BY variant_key",
        **m,
    )
    [[invoices]] = await client.sql(
        "SELECT count() FROM analytics.invoices WHERE merchant_id = {m:UInt64}", **m
    )
    [[delivered]] = await client.sql(
        "SELECT countIf(delivered_at IS NOT NULL) FROM analytics.shipments"
        " WHERE merchant_id = {m:UInt64}",
        **m,
    )
    [[reviews, withheld]] = await client.sql(
        "SELECT count(), countIf(content_withheld = 1) FROM analytics.product_reviews"
        " WHERE merchant_id = {m:UInt64}",
        **m,
    )
    return {
        "recovered": recovered,
        "margin": Decimal(str(margin)),
        "variants": {key: int(Decimal(str(units))) for key, units in variants},
        "invoices": invoices,
        "delivered": delivered,
        "reviews": f"{reviews} ({withheld} withheld)",
    }


async def merchant_totals(client: DemoClient, merchant_id: int) -> dict[str, Any]:
    [[orders, total]] = await client.sql(
        "SELECT count(), sum(total) FROM analytics.orders WHERE merchant_id = {m:UInt64}",
        m=merchant_id,
    )
    [[lines, line_total]] = await client.sql(
        "SELECT count(), sum(line_total) FROM analytics.sales_facts WHERE merchant_id = {m:UInt64}",
        m=merchant_id,
    )
    [[products]] = await client.sql(
        "SELECT count() FROM analytics.products WHERE merchant_id = {m:UInt64}", m=merchant_id
    )
    [[customers]] = await client.sql(
        "SELECT count() FROM analytics.customers WHERE merchant_id = {m:UInt64}", m=merchant_id
    )
    return {
        "orders": orders,
        "total": total,
        "lines": lines,
        "line_total": line_total,
        "products": products,
        "customers": customers,
    }


def compare(title: str, checks: list[tuple[str, Any, Any]], console: Console) -> bool:
    table = Table(title=title)
    for column in ("check", "expected", "in ClickHouse", ""):
        table.add_column(column)
    ok = True
    for name, expected, actual in checks:
        same = expected == actual
        ok &= same
        table.add_row(name, str(expected), str(actual), "[green]✓[/]" if same else "[red]✗[/]")
    console.print(table)
    return ok


SYNC_MERCHANT = 1305999001
SYNC_PLAN_LIMIT = 720  # requests per minute: Salla's Special plan (reference §4)


async def run_historical_sync(client: DemoClient, console: Console) -> bool:
    """A second store authorizes the app; its last 12 months are backfilled from the emulator."""
    salla = EmulatorClient(client.stack.salla_url)
    try:
        with console.status("generating a Salla store with 30 months of history…"):
            await salla.configure(rate_limit_per_minute=SYNC_PLAN_LIMIT)
            tokens = await salla.create_merchant(SYNC_MERCHANT, orders=450, seed=11)
        status, _ = await client.send(authorization_event(SYNC_MERCHANT, tokens))
        if status != 200:
            raise RuntimeError(f"app.store.authorize webhook answered {status}")
        await wait_authorized(client)
        started = time.perf_counter()
        job = await client.api(
            "POST",
            "/api/jobs/sync/initiate",
            json={"merchantId": str(SYNC_MERCHANT), "depth": "12m"},
        )
        console.print(
            f"historical sync [bold]{job['jobId']}[/] for merchant {SYNC_MERCHANT}: 12 months "
            f"from the Salla Admin API emulator at {SYNC_PLAN_LIMIT} requests/min (Special plan)"
        )
        final = await follow_job(client, job["jobId"], console)
        elapsed = time.perf_counter() - started
        truth = await salla.truth(SYNC_MERCHANT, final["window"]["from"], final["window"]["to"])
        stats = await salla.stats()
    finally:
        await salla.aclose()
    requests = sum(final["requests"].get(k, 0) for k in ("orders.list", "orders.detail"))
    summary = Table(title="Historical sync", show_header=False)
    summary.add_row("status", final["status"])
    summary.add_row("window (Asia/Riyadh)", f"{final['window']['from']} → {final['window']['to']}")
    summary.add_row("loaded", ", ".join(f"{v} {k}" for k, v in final["counts"].items()))
    summary.add_row("requests to Salla", str(stats["counts"].get("requests", 0)))
    summary.add_row(
        "order requests per order", f"{requests / max(1, final['counts']['orders']):.3f}"
    )
    summary.add_row("429s received", str(stats["counts"].get("429", 0)))
    summary.add_row("wall time", f"{elapsed:.1f} s")
    console.print(summary)
    found = await merchant_totals(client, SYNC_MERCHANT)
    checks = [
        ("orders created in the window", truth["orders"], found["orders"]),
        ("sum of order totals", Decimal(truth["total"]), Decimal(str(found["total"]))),
        ("line items", truth["line_items"], found["lines"]),
        ("sum of line totals", Decimal(truth["line_total"]), Decimal(str(found["line_total"]))),
        ("products", truth["products"], found["products"]),
        ("customers", truth["customers"], found["customers"]),
    ]
    ok = compare("Warehouse vs. the emulated store", checks, console)
    return ok and final["status"] == "COMPLETED"


async def wait_authorized(client: DemoClient) -> None:
    """The authorize webhook goes through the queue; the merchant's tokens land shortly after."""
    deadline = time.monotonic() + 30
    while True:
        state = await client.settlement()
        if state["settled"] >= state["accepted"]:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the app.store.authorize event did not settle")
        await asyncio.sleep(0.05)


async def follow_job(client: DemoClient, job_id: str, console: Console) -> dict[str, Any]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    deadline = time.monotonic() + 600
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("backfilling", total=100, detail="")
        while True:
            job = await client.api("GET", "/api/jobs/sync/status", params={"jobId": job_id})
            counts = job["counts"]
            progress.update(
                task,
                completed=job["progress"],
                detail=f"{job['position']} · {counts['products']} products, "
                f"{counts['customers']} customers, {counts['orders']} orders",
            )
            if job["status"] in ("COMPLETED", "FAILED"):
                return job
            if time.monotonic() > deadline:
                raise RuntimeError(f"historical sync did not finish: {job}")
            await asyncio.sleep(0.25)


async def run_demo(data_dir: Path, console: Console) -> bool:
    store = demo_store()
    deliveries = delivery_schedule(store.events, duplicate_share=0.3)
    # The emulated store is generated relative to today: start from a clean data dir.
    await asyncio.to_thread(shutil.rmtree, data_dir, ignore_errors=True)
    with postgres_server(data_dir / "postgres") as postgres:
        await asyncio.to_thread(create_app_tables, postgres)
        return await _run_scenes(data_dir, console, store, deliveries, postgres)


async def _run_scenes(
    data_dir: Path,
    console: Console,
    store: StoreSimulation,
    deliveries: list[bytes],
    postgres: str,
) -> bool:
    cdc_env = {"CDC_DATABASE_URL": postgres, "CDC_TABLES": ",".join(CDC_DEMO_TABLES)}
    stack = start_stack(data_dir, console, cdc_env)
    client = DemoClient(stack)
    try:
        console.print(
            Panel.fit(
                f"service {stack.url}\nwebhook {stack.url}{WEBHOOK_PATH}\nlogs {stack.log_path}",
                title="local stack up",
            )
        )
        console.print(
            f"A month of a Salla store: {len(store.events)} events ({len(store.truth.orders)} "
            f"orders with status changes, item changes, a cancellation, a deletion, products, "
            f"customers, abandoned carts, app authorization, an unmodeled event), delivered "
            f"{len(deliveries)} times: duplicated and shuffled like at-least-once delivery."
        )
        started = time.perf_counter()
        latencies = await push_events(client, deliveries, console)
        state = await wait_settled(client, len(deliveries), console)
        elapsed = time.perf_counter() - started
        latencies.sort()
        summary = Table(title="Pipeline", show_header=False)
        summary.add_row("webhooks accepted", str(int(state["accepted"])))
        for outcome, count in state["outcomes"].items():
            summary.add_row(f"settled as {outcome}", str(int(count)))
        summary.add_row(
            "ack latency p50 / p99",
            f"{latencies[len(latencies) // 2] * 1000:.1f} ms / "
            f"{latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms",
        )
        summary.add_row("all settled after", f"{elapsed:.2f} s")
        console.print(summary)
        await show_warehouse(client, console)
        ok = await check_against_truth(client, store, console)
        ok &= await show_search(client, store, console)
        ok &= await run_historical_sync(client, console)
        ok &= await run_cdc_scene(client, postgres, console)
    finally:
        await client.aclose()
        code = stack.stop()
    console.print(f"local stack stopped with exit code {code} (SIGTERM: drained, nothing lost)")
    return ok and code == 0


async def show_search(client: DemoClient, store: StoreSimulation, console: Console) -> bool:
    """Wait for the embed steps to index the store, then search it in Arabic and in English."""
    from data_pipeline.entrypoints.cli.rag import rows_table

    live = sum(not p["deleted"] for p in store.truth.products.values()) + sum(
        not o.deleted for o in store.truth.orders.values()
    )
    namespace = f"merchant-{store.merchant_id}"
    probe = await client.http.post(
        "/api/rag/search",
        json={"merchantId": store.merchant_id, "query": "probe"},
        headers={"Authorization": f"Bearer {client.stack.api_key}"},
    )
    if probe.status_code == 503 and "not enabled" in probe.text:
        console.print("RAG search: off (RAG_ENABLED=false or the `local` extra is missing)")
        return True
    started = time.perf_counter()
    with console.status("waiting for the embed steps to index the store…"):
        while True:
            ((indexed,),) = await client.sql(
                "SELECT count() FROM analytics.rag_vectors FINAL"
                " WHERE namespace = {ns:String} AND is_deleted = 0",
                ns=namespace,
            )
            if int(indexed) >= live:
                break
            if time.perf_counter() - started > 120:
                console.print(f"[red]only {indexed} of {live} documents were indexed[/]")
                return False
            await asyncio.sleep(0.25)
    console.print(
        f"RAG: {live} products and order summaries embedded (multilingual-e5-small, local) "
        f"{time.perf_counter() - started:.1f} s after the warehouse settled"
    )
    ok = True
    for query, expected in (
        (CATALOG[0][0], store.product_ids[0]),  # an exact Arabic name
        (CATALOG[1][1], store.product_ids[1]),  # an exact English name
    ):
        answer = await client.api(
            "POST", "/api/rag/search", json={"merchantId": store.merchant_id, "query": query}
        )
        console.print(rows_table(query, answer["matches"]))
        ok &= bool(answer["matches"]) and answer["matches"][0]["id"] == f"product:{expected}"
    for query in ("هدية لمحبي القهوة", "orders delivered to Jeddah"):
        answer = await client.api(
            "POST",
            "/api/rag/search",
            json={"merchantId": store.merchant_id, "query": query, "topK": 3},
        )
        console.print(rows_table(query, answer["matches"]))
    return ok


CDC_DEMO_TABLES = ("public.plans", "public.app_merchants", "app.goals")
_APP_SCHEMA = """
CREATE TABLE plans (id int PRIMARY KEY, name text NOT NULL, price numeric(10, 2));
CREATE TABLE app_merchants (id bigint PRIMARY KEY, store_name text, plan_id int,
    active boolean NOT NULL DEFAULT true, settings jsonb, created_at timestamptz DEFAULT now());
CREATE SCHEMA app;
CREATE TABLE app.goals (id serial PRIMARY KEY, merchant_id bigint, metric text,
    target numeric(14, 2), due date);
INSERT INTO plans VALUES (1, 'Plus', 99), (2, 'Pro', 299), (3, 'Special', 799);
INSERT INTO app_merchants (id, store_name, plan_id, settings)
    SELECT 1305146700 + g, 'متجر ' || g, 1 + g % 3, jsonb_build_object('lang', 'ar', 'n', g)
    FROM generate_series(1, 200) g;
INSERT INTO app.goals (merchant_id, metric, target, due)
    SELECT 1305146700 + g, 'revenue', g * 1000, DATE '2026-12-31' FROM generate_series(1, 200) g;
"""
_APP_CHANGES = """
UPDATE plans SET price = 349 WHERE id = 2;
INSERT INTO app_merchants (id, store_name, plan_id) VALUES (1305147000, 'متجر جديد', 2);
UPDATE app_merchants SET active = false, settings = NULL WHERE id % 10 = 0;
DELETE FROM app.goals WHERE merchant_id % 7 = 0;
UPDATE app.goals SET target = target * 1.1 WHERE merchant_id % 5 = 0;
"""


def create_app_tables(postgres: str) -> None:
    import psycopg

    with psycopg.connect(postgres, autocommit=True) as db:
        db.execute(_APP_SCHEMA)


async def run_cdc_scene(client: DemoClient, postgres: str, console: Console) -> bool:
    """The app's own PostgreSQL tables, replicated: rows that existed when the stack started
    (the snapshot) and the writes made now (the stream) must match in ClickHouse."""
    import psycopg

    def apply_changes() -> dict[str, list[Any]]:
        with psycopg.connect(postgres, autocommit=True) as db:
            db.execute(_APP_CHANGES)
            return {
                name: list(db.execute(pg).fetchone() or []) for name, (pg, _) in _CDC_CHECKS.items()
            }

    started = time.perf_counter()
    expected = await asyncio.to_thread(apply_changes)
    found: dict[str, list[Any]] = {}
    deadline = time.monotonic() + 60
    with console.status("change data capture: waiting for the app's writes in ClickHouse…"):
        while time.monotonic() < deadline:
            found = {}
            for name, (_, clickhouse) in _CDC_CHECKS.items():
                try:
                    [row] = await client.sql(clickhouse)
                except (httpx.HTTPError, ValueError):
                    row = []
                found[name] = [_plain(v) for v in row]
            if found == {k: [_plain(v) for v in row] for k, row in expected.items()}:
                break
            await asyncio.sleep(0.25)
    lag = time.perf_counter() - started
    checks = [(name, [_plain(v) for v in expected[name]], found.get(name)) for name in _CDC_CHECKS]
    ok = compare("PostgreSQL (the app's tables) vs. ClickHouse (oltp.*)", checks, console)
    console.print(f"change data capture: the writes were queryable after {lag:.2f} s")
    return ok


_CDC_CHECKS = {  # name: (PostgreSQL, ClickHouse)
    "plans: rows, sum(price)": (
        "SELECT count(*), sum(price) FROM plans",
        "SELECT count(), sum(price) FROM oltp.plans",
    ),
    "merchants: rows, active, with settings": (
        "SELECT count(*), sum(CASE WHEN active THEN 1 ELSE 0 END), count(settings) "
        "FROM app_merchants",
        "SELECT count(), sum(CASE WHEN active THEN 1 ELSE 0 END), count(settings) "
        "FROM oltp.app_merchants",
    ),
    "app.goals: rows, sum(target)": (
        "SELECT count(*), sum(target) FROM app.goals",
        "SELECT count(), sum(target) FROM oltp.app__goals",
    ),
}


def _plain(value: Any) -> str:
    return f"{Decimal(str(value)).normalize():f}" if value is not None else "NULL"


def demo_main(data_dir: Path) -> int:
    console = Console()
    try:
        ok = asyncio.run(run_demo(data_dir, console))
    except RuntimeError as error:
        console.print(f"[bold red]demo failed:[/] {error}")
        return 1
    console.print("[bold green]demo complete[/]" if ok else "[bold red]demo found a mismatch[/]")
    return 0 if ok else 1
