"""`salla-pipeline import-events` end to end: line items per second from a JSON Lines file.

`python -m bench import`. A simulated store's history (orders with 1–4 line items, their status
changes, products, customers) is written to a JSON Lines file, then imported into an empty data
dir by the real command, as a user runs it (a subprocess: reading, parsing, transforming,
archiving, loading, refreshing the current state, settling each event in the embedded state
store). Then the same file again: every event is already there, the import must change nothing.
Then the same file into another empty data dir with `--processes 1`, for the ratio of the worker
processes' effect, and with `--no-compiled`, for the compiled domain's (the first import uses it
when `make` has built it: data_pipeline/compiled_domain.py). `BENCH_IMPORT_ORDERS` sets the
size; 40,000 orders ≈ 100,000 line items.

Differs from production: chDB embedded and SQLite state in the same process, where production
imports through a service into ClickHouse Cloud and Redis.
"""

from __future__ import annotations

import gc
import os
import re
from pathlib import Path
from typing import Any

from data_pipeline.devtools.salla_samples import StoreSimulation, encode

from bench.processes import timed_cli, workdir


def _store(orders: int) -> StoreSimulation:
    store = StoreSimulation(merchant_id=8_000_002, seed=9)
    store.create_products()
    store.create_customers(200)
    for _ in range(orders):
        store.create_order()
    return store


def _write_history(orders: int, path: Path) -> int:
    """The store's history as JSON Lines at `path`; returns the number of events. On disk and
    out of this process's memory before any clock starts, as a user's export is: the file's
    dirty pages being written back, or the simulation's gigabytes of objects held here,
    measured 10-20 % off the import being timed."""
    store = _store(orders)
    with path.open("wb") as file:
        file.write(b"".join(encode(event) + b"\n" for event in store.events))
        file.flush()
        os.fsync(file.fileno())
    events = len(store.events)
    del store
    gc.collect()
    return events


def _import(path: Path, data_dir: Path, *flags: str) -> tuple[float, str]:
    return timed_cli("import-events", str(path), "--data-dir", str(data_dir), *flags)


def _count(pattern: str, output: str) -> int:
    match = re.search(pattern, output)
    return int(match.group(1).replace(",", "")) if match else -1


def measure(orders: int | None = None) -> dict[str, Any]:
    orders = orders or int(os.environ.get("BENCH_IMPORT_ORDERS", "40000"))
    with workdir() as tmp:
        path = tmp / "events.jsonl"
        events = _write_history(orders, path)
        file_mib = round(path.stat().st_size / 2**20, 1)
        first_s, first = _import(path, tmp / "data")
        again_s, again = _import(path, tmp / "data")
        single_s, _ = _import(path, tmp / "single", "--processes", "1")
        python_s, _ = _import(path, tmp / "python", "--no-compiled")
    items = _count(r"\(([\d,]+) line items\)", first)
    transform = re.search(r"transform: (.*)", first)
    return {
        "events": events,
        "orders": orders,
        "line_items": items,
        "file_mib": file_mib,
        "first_import_s": round(first_s, 2),
        "line_items_per_s": round(items / first_s),
        "events_per_s": round(events / first_s),
        "loaded": _count(r"([\d,]+) loaded", first),
        "reimport_s": round(again_s, 2),
        "reimport_loaded": _count(r"([\d,]+) loaded", again),
        "reimport_duplicates": _count(r"([\d,]+) already there", again),
        "processes": os.cpu_count(),
        "one_process_s": round(single_s, 2),
        "one_process_line_items_per_s": round(items / single_s),
        "transform": transform.group(1) if transform else "?",
        "python_domain_s": round(python_s, 2),
        "python_domain_line_items_per_s": round(items / python_s),
        "target_met": items / first_s >= 20_000,
    }


def report(result: dict[str, Any]) -> str:
    return (
        f"import-events ({result['events']:,} events, {result['orders']:,} orders, "
        f"{result['line_items']:,} line items, {result['file_mib']} MiB), "
        "end to end through the CLI: "
        f"{result['first_import_s']} s = {result['line_items_per_s']:,} line items/s "
        f"({result['events_per_s']:,} events/s; target >= 20,000 line items/s); "
        f"re-import {result['reimport_s']} s, {result['reimport_loaded']} loaded, "
        f"{result['reimport_duplicates']:,} already there; "
        f"in one process (--processes 1): {result['one_process_s']} s = "
        f"{result['one_process_line_items_per_s']:,} line items/s; "
        f"first import's {result['transform']}; with the Python domain (--no-compiled): "
        f"{result['python_domain_s']} s = {result['python_domain_line_items_per_s']:,} "
        "line items/s"
    )


if __name__ == "__main__":
    print(report(measure()))
