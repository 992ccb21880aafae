"""The app's query set over the read contract, against the physical floor, at 2 M and 10 M orders.

`python -m bench reads` (default 2 M and 10 M orders, ~15 minutes; choose the sizes with
`BENCH_READS_ORDERS=2000000` or `python -m bench.reads --orders 2000000`). For each size:

1. Schema by the real migrations; two years of orders generated straight into the version
   tables (ClickHouse `numbers()`: order ids grow with time as Salla's do; ~2 versions per order,
   the second a partial status update; 1 % deleted; 1–5 line items; one big merchant holding
   ~17 % of all orders, spread over the two years, 2,000 small ones; customers, products,
   abandoned carts).
2. The contract's current-state tables filled by the same refresh SQL the migration runs.
3. The floor: the contract's current state copied into plain MergeTree tables sorted
   `(merchant_id, created_at)`, fully merged: the least a query can read.
4. Old partitions settle by ClickHouse's background merges only (never `OPTIMIZE ... FINAL`):
   the bench shortens `min_age_to_force_merge_seconds` from production's 300 s to 10 s so that
   the state a quiet year reaches after five minutes is reached during the run.
5. While the queries run, webhooks keep arriving: a thread loads status updates of the big
   merchant's recent orders through the real write path (versions, then the snapshot refresh)
   every 100 ms, 20 orders at a time.

The contract is read as the app reads it: with the app reader's settings (`READER_SETTINGS`,
adapters/clickhouse_access.py; the warehouse's reading session has them, as the reader user does
on ClickHouse Cloud). Each query runs 15 times, contract and floor interleaved, and its
contract/floor ratio is the ratio of the medians; that is done in five rounds (the box's speed
drifts within minutes), and the verdict is on the median of the rounds' ratios, each round's
shown. The first round of the first size also times other layouts: the same snapshots
partitioned by month, and unpartitioned; line items as the arrays of each order row (migrations
4-8, before the line rows of migration 9); the layout before all of these (views aggregating
every version at query time); the contract with its views planned as subqueries (ClickHouse's
default, without the reader's settings). The month and unpartitioned layouts are copies the
webhook thread does not write to, so they read no unmerged parts: a comparison that favours
them. It reports the storage of the chosen layout against the earlier one.

Differs from production: chDB in-process (no network, no HTTP parsing), 2 cores, data generated
rather than loaded through webhooks (the write path is measured by `bench import`).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from data_pipeline.adapters.clickhouse_current import CURRENT_TABLES, ORDER_ITEMS, full_refresh
from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse
from data_pipeline.adapters.warehouse import LoadBatch
from data_pipeline.domain.model import OrderVersion

BIG = 1
SMALL = 7
NOW = datetime(2026, 12, 1, tzinfo=UTC)
SQL_NOW = "toDateTime64('2026-12-01 00:00:00', 3, 'UTC')"
RUNS = 15
ROUNDS = 5  # one round's ratio moved by up to 0.8x between rounds of one run

QUERIES: dict[str, str] = {
    "daily revenue and orders, 90 days, big merchant": (
        "SELECT toDate(created_at, 'Asia/Riyadh') AS day, sum(total), count() FROM {orders} "
        "WHERE merchant_id = 1 AND created_at >= {now} - INTERVAL 90 DAY "
        "AND status != 'canceled' GROUP BY day ORDER BY day"
    ),
    "top 10 products by revenue, 30 days, big merchant": (
        "SELECT product_id, sum(line_total) AS revenue FROM {sales} WHERE merchant_id = 1 "
        "AND order_created_at >= {now} - INTERVAL 30 DAY GROUP BY product_id "
        "ORDER BY revenue DESC LIMIT 10"
    ),
    "top 10 products by units, 30 days, big merchant": (
        "SELECT product_id, sum(quantity) AS units FROM {sales} WHERE merchant_id = 1 "
        "AND order_created_at >= {now} - INTERVAL 30 DAY GROUP BY product_id "
        "ORDER BY units DESC LIMIT 10"
    ),
    "order counts by status, big merchant": (
        "SELECT status, count() FROM {orders} WHERE merchant_id = 1 GROUP BY status ORDER BY status"
    ),
    "order counts by status, small merchant": (
        "SELECT status, count() FROM {orders} WHERE merchant_id = 7 GROUP BY status ORDER BY status"
    ),
    "one order with its items": (
        "SELECT o.order_id, o.status, o.total, s.item_id, s.product_id, s.line_total "
        "FROM (SELECT * FROM {orders} WHERE merchant_id = 1 AND order_id = {order_id}) AS o "
        "LEFT JOIN (SELECT * FROM {sales} WHERE merchant_id = 1 AND order_id = {order_id}) AS s "
        "USING (order_id) ORDER BY s.item_id"
    ),
    "revenue per merchant, 30 days, all merchants": (
        "SELECT merchant_id, sum(total) FROM {orders} "
        "WHERE created_at >= {now} - INTERVAL 30 DAY GROUP BY merchant_id ORDER BY merchant_id"
    ),
    "new vs returning customers per month, 12 months, big merchant": (
        "SELECT month, countIf(first = month) AS new, countIf(first < month) AS returning FROM ("
        "SELECT customer_id, toStartOfMonth(created_at, 'Asia/Riyadh') AS month, "
        "min(toStartOfMonth(created_at, 'Asia/Riyadh')) OVER (PARTITION BY customer_id) AS first "
        "FROM {orders} WHERE merchant_id = 1) "
        "WHERE month >= toStartOfMonth({now} - INTERVAL 12 MONTH) GROUP BY month ORDER BY month"
    ),
    "abandoned carts, 30 days, big merchant": (
        "SELECT count(), sum(total) FROM {carts} WHERE merchant_id = 1 "
        "AND created_at >= {now} - INTERVAL 30 DAY"
    ),
}


def generate(client: Any, db: str, orders: int) -> dict[str, Any]:
    """Versions straight into storage: order n is created at a time growing with n. The big
    merchant's orders (17.25 % of all) are spread over the whole two years, as a real store's
    are (they were the oldest 17.25 % before 2026-12-06, which left its 30- and 90-day queries
    with nothing to read)."""
    big = int(orders * 0.1725)
    step = 730 * 86400 / orders
    client.command(
        f"""INSERT INTO {db}.order_versions (merchant_id, order_id, version, is_deleted,
            event_time, reference_id, status, status_name, total, sub_total, shipping_cost, tax,
            discount, currency, payment_method, customer_id, city, country, source, created_at,
            has_items, items.item_id, items.product_id, items.sku, items.name, items.quantity,
            items.unit_price, items.discount, items.tax, items.line_total, items.currency)
        SELECT m, oid, v, 0, cr, n, 'under_review', 'بإنتظار المراجعة', tot, tot - 15, 15,
            tot * 0.15, 0, 'SAR', 'mada', cust, 'الرياض', 'SA', 'web', cr, 1,
            arrayMap(i -> oid * 10 + i, range(ni)),
            arrayMap(i -> toNullable(toUInt64(m * 100000 + cityHash64(oid, i) % 500)), range(ni)),
            arrayMap(i -> concat('SKU-', toString(cityHash64(oid, i) % 500)), range(ni)),
            arrayMap(i -> concat('منتج ', toString(cityHash64(oid, i) % 500)), range(ni)),
            arrayMap(i -> toDecimal64(1 + cityHash64(oid, i, 1) % 3, 4), range(ni)),
            arrayMap(i -> toDecimal64((cityHash64(oid, i, 2) % 50000) / 100, 4), range(ni)),
            arrayMap(i -> toDecimal64(0, 4), range(ni)),
            arrayMap(i -> toDecimal64(0, 4), range(ni)),
            arrayMap(i -> toDecimal64((cityHash64(oid, i, 2) % 50000) / 100, 4), range(ni)),
            arrayMap(i -> toNullable('SAR'), range(ni))
        FROM (
            SELECT number AS n,
                if(cityHash64(n, 11) % 10000 < 1725, {BIG}, 2 + n % 2000) AS m,
                1000000000 + n AS oid,
                {SQL_NOW} - toIntervalSecond(toInt64(({orders} - n) * {step})) AS cr,
                toUInt64(toUnixTimestamp64Milli(cr)) * 1048576 + 65536 AS v,
                toDecimal64((cityHash64(n) % 100000) / 100, 4) AS tot,
                toUInt64(m * 1000000 + cityHash64(n, 7) % if(m = {BIG}, 100000, 200)) AS cust,
                1 + cityHash64(n, 3) % 5 AS ni
            FROM numbers({orders}))"""
    )
    # A partial status update per order, an hour later; 1 % deleted two hours later.
    client.command(
        f"""INSERT INTO {db}.order_versions (merchant_id, order_id, version, is_deleted,
            event_time, status, has_items)
        SELECT merchant_id, order_id, version + 3600000 * 1048576, 0,
            event_time + toIntervalHour(1),
            ['completed', 'delivered', 'shipped', 'canceled'][1 + cityHash64(order_id) % 4], 0
        FROM {db}.order_versions WHERE has_items = 1"""
    )
    client.command(
        f"""INSERT INTO {db}.order_versions (merchant_id, order_id, version, is_deleted,
            event_time, has_items)
        SELECT merchant_id, order_id, version + 7200000 * 1048576 + 15 * 65536, 1,
            event_time + toIntervalHour(2), 0
        FROM {db}.order_versions WHERE has_items = 1 AND cityHash64(order_id, 9) % 100 = 0"""
    )
    client.command(
        f"""INSERT INTO {db}.product_versions (merchant_id, product_id, version, is_deleted,
            event_time, name, sku, price, currency, status, quantity)
        SELECT m, m * 100000 + p, 1048576, 0, {SQL_NOW} - INTERVAL 800 DAY,
            concat('منتج ', toString(p)), concat('SKU-', toString(p)),
            toDecimal64(10 + p, 4), 'SAR', 'sale', 100
        FROM (SELECT intDiv(number, 500) + 1 AS m, number % 500 AS p FROM numbers(2001 * 500))"""
    )
    client.command(
        f"""INSERT INTO {db}.customer_versions (merchant_id, customer_id, version, event_time,
            city, country, country_code, currency)
        SELECT DISTINCT merchant_id, customer_id, 1048576, {SQL_NOW} - INTERVAL 800 DAY,
            'الرياض', 'السعودية', 'SA', 'SAR'
        FROM {db}.order_versions WHERE has_items = 1"""
    )
    client.command(
        f"""INSERT INTO {db}.abandoned_cart_versions (merchant_id, cart_id, version, event_time,
            customer_id, total, subtotal, discount, currency, item_count, created_at)
        SELECT merchant_id, order_id + 5000000000, version, event_time, customer_id, total,
            total, 0, 'SAR', 2, created_at
        FROM {db}.order_versions WHERE has_items = 1 AND cityHash64(order_id, 5) % 10 = 0"""
    )
    big_ids = client.query(
        f"SELECT order_id FROM {db}.order_versions WHERE merchant_id = {BIG} "
        "ORDER BY order_id DESC LIMIT 5000"
    ).result_rows
    return {"recent_big_orders": [row[0] for row in big_ids], "big_orders": big}


def build_floor(client: Any, db: str) -> None:
    client.command(
        f"CREATE TABLE {db}.floor_orders ENGINE = MergeTree ORDER BY (merchant_id, created_at) "
        f"AS SELECT * REPLACE (assumeNotNull(created_at) AS created_at) FROM {db}.orders"
    )
    client.command(
        f"CREATE TABLE {db}.floor_sales ENGINE = MergeTree "
        "ORDER BY (merchant_id, order_created_at) AS SELECT * REPLACE "
        f"(assumeNotNull(order_created_at) AS order_created_at) FROM {db}.sales_facts"
    )
    client.command(
        f"CREATE TABLE {db}.floor_carts ENGINE = MergeTree ORDER BY (merchant_id, created_at) "
        f"AS SELECT * REPLACE (assumeNotNull(created_at) AS created_at) FROM {db}.abandoned_carts"
    )
    for table in ("floor_orders", "floor_sales", "floor_carts"):
        client.command(f"OPTIMIZE TABLE {db}.{table} FINAL")  # the floor may be perfect


_ITEM_COLUMNS = ", ".join(f"`items.{item}`" for item in ORDER_ITEMS)


def _arrays_sales(client: Any, view: str, orders: str) -> None:
    """Line items as the arrays of each order row, ARRAY JOINed at query time."""
    client.command(
        f"CREATE VIEW {view} AS SELECT merchant_id, order_id, "
        "items.item_id AS item_id, items.product_id AS product_id, "
        "items.quantity AS quantity, items.line_total AS line_total, "
        f"created_at AS order_created_at FROM {orders} FINAL ARRAY JOIN items "
        "WHERE is_deleted = 0 AND ifNull(is_draft, 0) = 0 "
        "SETTINGS do_not_merge_across_partitions_select_final = 1"
    )


def build_alternatives(client: Any, db: str) -> None:
    """The same snapshots under other layouts, and the layout before (versions at query time)."""
    for name, partition in (("month", "PARTITION BY toYYYYMM(created_at)"), ("none", "")):
        client.command(
            f"CREATE TABLE {db}.orders_{name} AS {db}.orders_current "
            f"ENGINE = ReplacingMergeTree(versions, is_deleted) {partition} "
            "ORDER BY (merchant_id, order_id) SETTINGS allow_nullable_key = 1, "
            "min_age_to_force_merge_seconds = 10, min_age_to_force_merge_on_partition_only = 1"
        )
        client.command(f"INSERT INTO {db}.orders_{name} SELECT * FROM {db}.orders_current")
        final = (
            "FINAL WHERE is_deleted = 0 SETTINGS do_not_merge_across_partitions_select_final = 1"
        )
        client.command(
            f"CREATE VIEW {db}.alt_orders_{name} AS SELECT * EXCEPT (versions, is_deleted, "
            f"version, {_ITEM_COLUMNS}) FROM {db}.orders_{name} {final}"
        )
        _arrays_sales(client, f"{db}.alt_sales_{name}", f"{db}.orders_{name}")
    # The contract's own snapshots with the lines read as arrays (migrations 4-8).
    _arrays_sales(client, f"{db}.arrays_sales", f"{db}.orders_current")
    # The earlier storage, for its size: version rows without items, item sets on their own.
    client.command(
        f"CREATE TABLE {db}.earlier_order_versions AS {db}.order_versions "
        "ENGINE = ReplacingMergeTree ORDER BY (merchant_id, order_id, version)"
    )
    client.command(
        f"INSERT INTO {db}.earlier_order_versions SELECT * REPLACE (0 AS has_items, "
        + ", ".join(f"[] AS `items.{item}`" for item in ORDER_ITEMS)
        + f") FROM {db}.order_versions"
    )
    client.command(
        f"INSERT INTO {db}.order_item_sets SELECT merchant_id, order_id, version, items.item_id, "
        "items.product_id, items.sku, items.name, items.quantity, items.unit_price, "
        "items.discount, items.tax, items.line_total, items.currency, now64(3) "
        f"FROM {db}.order_versions WHERE has_items = 1"
    )
    latest = ", ".join(
        f"argMax({c}, version) AS {c}" for c in ("status", "total", "customer_id", "created_at")
    )
    client.command(
        f"CREATE VIEW {db}.before_orders AS SELECT merchant_id, order_id, {latest} "
        f"FROM {db}.order_versions GROUP BY merchant_id, order_id "
        "HAVING argMax(is_deleted, version) = 0"
    )
    client.command(
        f"CREATE VIEW {db}.before_sales AS SELECT i.merchant_id AS merchant_id, "
        "i.order_id AS order_id, i.item_id AS item_id, i.product_id AS product_id, "
        "i.quantity AS quantity, i.line_total AS line_total, o.created_at AS order_created_at "
        f"FROM (SELECT merchant_id, order_id, items.item_id AS item_id, "
        "items.product_id AS product_id, items.quantity AS quantity, "
        f"items.line_total AS line_total FROM {db}.order_versions ARRAY JOIN items "
        "WHERE has_items = 1) AS i "
        f"INNER JOIN {db}.before_orders AS o USING (merchant_id, order_id)"
    )


def settle(client: Any, db: str, timeout: float = 600) -> int:
    """Wait until background merges leave each partition of the snapshot tables in one part."""
    lines = tuple(t.lines for t in CURRENT_TABLES if t.lines)  # order lines settle as orders do
    for table in (*(t.name for t in CURRENT_TABLES), *lines, "orders_month", "orders_none"):
        client.command(
            f"ALTER TABLE {db}.{table} MODIFY SETTING min_age_to_force_merge_seconds = 10"
        ) if _exists(client, db, table) else None
    deadline = time.monotonic() + timeout
    while True:
        [(extra,)] = client.query(
            "SELECT sum(parts - 1) FROM (SELECT table, partition, count() AS parts "
            "FROM system.parts WHERE database = {db:String} AND active "
            "AND (table LIKE '%current' OR table LIKE 'orders\\_%') GROUP BY table, partition)",
            parameters={"db": db},
        ).result_rows
        if not extra or time.monotonic() > deadline:
            return int(extra or 0)
        time.sleep(5)


def _exists(client: Any, db: str, table: str) -> bool:
    return bool(client.command(f"EXISTS TABLE {db}.{table}"))


class Webhooks(threading.Thread):
    """Status updates of the big merchant's recent orders through the real write path."""

    def __init__(self, warehouse: ClickHouseWarehouse, order_ids: list[int]) -> None:
        super().__init__(daemon=True)
        self._warehouse, self._ids = warehouse, order_ids
        self._halt = threading.Event()
        self.batches = 0
        self.seconds: list[float] = []

    def run(self) -> None:
        rng = random.Random(1)
        sequence = 0
        while not self._halt.wait(0.1):
            sequence += 1
            event_time = NOW + timedelta(seconds=sequence)
            batch = LoadBatch(
                entities=[
                    OrderVersion(
                        merchant_id=BIG,
                        order_id=order_id,
                        version=(int(event_time.timestamp() * 1000) << 20) | (2 << 16) | i,
                        event_time=event_time,
                        status=rng.choice(["delivered", "completed", "shipped"]),
                    )
                    for i, order_id in enumerate(rng.sample(self._ids, 20))
                ]
            )
            started = time.perf_counter()
            self._warehouse.write(batch)
            self.seconds.append(time.perf_counter() - started)
            self.batches += 1

    def stop(self) -> None:
        self._halt.set()
        self.join()


def time_queries(
    client: Any, targets: dict[str, dict[str, str]], order_id: int
) -> dict[str, dict[str, float]]:
    medians: dict[str, dict[str, float]] = {}
    for label, template in QUERIES.items():
        samples: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(RUNS):
            for name, tables in targets.items():
                if "{carts}" in template and "carts" not in tables:
                    continue
                sql = template.format(now=SQL_NOW, order_id=order_id, **tables)
                sql += tables.get("settings", "")
                started = time.perf_counter()
                client.query(sql)
                samples[name].append(time.perf_counter() - started)
        medians[label] = {
            name: statistics.median(values) * 1000 for name, values in samples.items() if values
        }
    return medians


def sizes(client: Any, db: str, orders: int) -> dict[str, float]:
    rows = client.query(
        "SELECT table, sum(bytes_on_disk) FROM system.parts WHERE database = {db:String} "
        "AND active GROUP BY table",
        parameters={"db": db},
    ).result_rows
    by_table = dict(rows)
    per_million = 1_000_000 / orders / 2**20

    def total(tables: tuple[str, ...]) -> float:
        return round(sum(by_table.get(t, 0) for t in tables) * per_million, 1)

    others = ("product_versions", "customer_versions", "abandoned_cart_versions")
    lines = tuple(t.lines for t in CURRENT_TABLES if t.lines)
    current = (*(t.name for t in CURRENT_TABLES), *lines)
    result = {
        "chosen layout (versions with items + current state)": total(
            ("order_versions", *others, *current)
        ),
        "of which the current state": total(current),
        "of which order lines as rows": total(lines),
    }
    if "earlier_order_versions" in by_table:
        result["earlier layout (versions + item sets)"] = total(
            ("earlier_order_versions", "order_item_sets", *others)
        )
    return result


def measure_size(path: Path, orders: int, *, alternatives: bool) -> dict[str, Any]:
    db = f"reads_{orders}"
    warehouse = ClickHouseWarehouse(f"chdb://{path}", db)
    warehouse.migrate()
    client = warehouse._connect()
    started = time.monotonic()
    generated = generate(client, db, orders)
    for table in CURRENT_TABLES:
        client.command(f"TRUNCATE TABLE {db}.{table.name}")
        client.command(full_refresh(table, db))
    build_floor(client, db)
    if alternatives:
        build_alternatives(client, db)
    loaded = time.monotonic() - started
    unsettled = settle(client, db)
    targets = {
        "contract": {
            "orders": f"{db}.orders",
            "sales": f"{db}.sales_facts",
            "carts": f"{db}.abandoned_carts",
        },
        "floor": {
            "orders": f"{db}.floor_orders",
            "sales": f"{db}.floor_sales",
            "carts": f"{db}.floor_carts",
        },
    }
    if alternatives:
        for name in ("month", "none"):
            targets[f"{name} partitions" if name == "month" else "unpartitioned"] = {
                "orders": f"{db}.alt_orders_{name}",
                "sales": f"{db}.alt_sales_{name}",
            }
        targets["views as subqueries (before)"] = {
            **targets["contract"],
            "settings": " SETTINGS analyzer_inline_views = 0",
        }
        targets["items as arrays (migrations 4-8)"] = {
            "orders": f"{db}.orders",
            "sales": f"{db}.arrays_sales",
        }
        targets["before (versions at query time)"] = {
            "orders": f"{db}.before_orders",
            "sales": f"{db}.before_sales",
        }
    webhooks = Webhooks(warehouse, generated["recent_big_orders"])
    webhooks.start()
    order_id = generated["recent_big_orders"][100]
    try:
        time.sleep(2)  # let the hot partition reach its steady state of small parts
        medians = time_queries(client, targets, order_id)
        ratios = {label: [m["contract"] / m["floor"]] for label, m in medians.items()}
        pair = {name: targets[name] for name in ("contract", "floor")}
        for _ in range(ROUNDS - 1):
            for label, m in time_queries(client, pair, order_id).items():
                ratios[label].append(m["contract"] / m["floor"])
    finally:
        webhooks.stop()
    [(parts,)] = client.query(
        "SELECT count() FROM system.parts WHERE database = {db:String} AND active "
        "AND table = 'orders_current'",
        parameters={"db": db},
    ).result_rows
    result = {
        "orders": orders,
        "load_seconds": round(loaded, 1),
        "unsettled_parts": unsettled,
        "orders_current_parts_while_measuring": parts,
        "webhook_batches": webhooks.batches,
        "webhook_batch_ms_p50": round(statistics.median(webhooks.seconds) * 1000, 1)
        if webhooks.seconds
        else None,
        "medians_ms": medians,  # the first round
        "ratios_by_round": {label: [round(r, 2) for r in rs] for label, rs in ratios.items()},
        "sizes_mib_per_million_orders": sizes(client, db, orders),
    }
    warehouse.close()
    return result


def measure(sizes_: tuple[int, ...] | None = None) -> dict[str, Any]:
    if sizes_ is None:
        chosen = os.environ.get("BENCH_READS_ORDERS", "2000000,10000000")
        sizes_ = tuple(int(size) for size in chosen.split(",") if size.strip())
    directory = Path(tempfile.mkdtemp(prefix="bench-reads-"))
    try:
        return {
            str(orders): measure_size(directory / "ch", orders, alternatives=index == 0)
            for index, orders in enumerate(sizes_)
        }
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def report(result: dict[str, Any]) -> str:
    lines = []
    for orders, run in result.items():
        lines.append(
            f"reads at {int(orders):,} orders (loaded in {run['load_seconds']} s; "
            f"{run['webhook_batches']} webhook batches during the run, p50 "
            f"{run['webhook_batch_ms_p50']} ms each; orders_current had "
            f"{run['orders_current_parts_while_measuring']} parts)"
        )
        for label, medians in run["medians_ms"].items():
            floor = medians["floor"]
            cells = "  ".join(
                f"{name} {value:7.1f} ms ({value / floor:4.1f}x)" for name, value in medians.items()
            )
            rounds = run["ratios_by_round"][label]
            ratio = statistics.median(rounds)
            verdict = "met" if ratio <= 2 else "NOT MET"
            spread = ", ".join(f"{r:.2f}" for r in rounds)
            lines.append(f"  {label:62s} {cells}")
            lines.append(f"  {'':62s} contract/floor {ratio:.2f}x (rounds {spread})  [{verdict}]")
        for what, mib in run["sizes_mib_per_million_orders"].items():
            lines.append(f"  storage, {what}: {mib} MiB per million orders")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", default="2000000,10000000")
    arguments = parser.parse_args()
    print(report(measure(tuple(int(n) for n in arguments.orders.split(",")))))
