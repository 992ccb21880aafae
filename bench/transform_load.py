"""Transform + load alone: raw order events to rows in chDB, in batches, in one process.

Runs the step as the worker does: the event loop transforms while the group-commit loader's
thread writes the previous batch (chDB releases the GIL while it inserts), so the two overlap.
Reports both components' own time and line items per second of wall time.
Target (issue 2): >= 20,000 line items/s in batches.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse
from data_pipeline.adapters.warehouse import LoadBatch
from data_pipeline.devtools.salla_samples import StoreSimulation, encode
from data_pipeline.domain.envelope import parse_envelope
from data_pipeline.domain.events import transform
from data_pipeline.domain.model import OrderItemSet
from data_pipeline.service_layer.archive import archive_record

from bench.processes import workdir


def measure(orders: int = 20_000, batch_size: int = 2_000) -> dict[str, float]:
    store = StoreSimulation(merchant_id=8_000_001, seed=5)
    store.create_products()
    store.create_customers(50)
    for _ in range(orders):
        store.create_order()
    bodies = [encode(e) for e in store.events if e["event"] == "order.created"]
    with workdir() as tmp:
        warehouse = ClickHouseWarehouse(f"chdb://{tmp / 'clickhouse'}", "analytics")
        warehouse.migrate()
        transform_s = load_s = 0.0
        items = 0
        loader = ThreadPoolExecutor(max_workers=1)
        writing: Future[float] | None = None

        def write(batch: LoadBatch) -> float:
            started = time.perf_counter()
            warehouse.write(batch)
            return time.perf_counter() - started

        wall = time.perf_counter()
        for start in range(0, len(bodies), batch_size):
            began = time.perf_counter()
            batch = LoadBatch()
            for raw in bodies[start : start + batch_size]:
                envelope = parse_envelope(raw)
                result = transform(envelope)
                batch.entities.extend(result.entities)
                batch.raw_events.append(archive_record(envelope, raw, datetime.now(UTC), "bench"))
                items += sum(len(e.items) for e in result.entities if isinstance(e, OrderItemSet))
            transform_s += time.perf_counter() - began
            if writing is not None:
                load_s += writing.result()
            writing = loader.submit(write, batch)
        load_s += writing.result() if writing is not None else 0.0
        wall = time.perf_counter() - wall
        loader.shutdown()
        [(stored,)] = warehouse.query("SELECT count() FROM analytics.sales_facts").rows
        warehouse.close()
    return {
        "orders": len(bodies),
        "line_items": items,
        "stored_line_items": stored,
        "batch_size": batch_size,
        "transform_s": round(transform_s, 2),
        "load_s": round(load_s, 2),
        "wall_s": round(wall, 2),
        "line_items_per_s": round(items / wall),
        "target_met": items / wall >= 20_000 and stored == items,
    }


def report(result: dict[str, float]) -> str:
    return (
        f"transform+load ({result['orders']} orders, {result['line_items']} line items, "
        f"batches of {result['batch_size']}): transform {result['transform_s']} s, "
        f"load {result['load_s']} s, overlapped in {result['wall_s']} s wall = "
        f"{result['line_items_per_s']:,} line items/s (target >= 20,000)"
    )


if __name__ == "__main__":
    outcome = measure()
    print(report(outcome))
    print(json.dumps(outcome))
