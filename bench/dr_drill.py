"""The disaster-recovery drill: rebuild a lost warehouse from the raw archive, timed.

`python -m bench dr` (`BENCH_DR_ORDERS`, default 40,000 orders ≈ 40,000 events). A simulated
store's history is archived exactly as the worker archives it (the same `archive_objects`, in
group commits of 4,000 events, into a `file://` archive); then the real
`salla-pipeline rebuild --from-archive` loads an empty data dir, as an operator runs it; then
the rebuilt contract is checked against the store's truth (orders and their total, line items
and their total, every event's raw record). The RTO figure is the rebuild's wall time scaled
to one million events.

Differs from production: the archive is a local directory (S3 adds listing and GET latency,
overlapped with loading only per object), chDB runs inside the command on the same 2 cores
as the transform; against ClickHouse Cloud the inserts and merges run on the service's
replicas, so the command's machine only transforms and encodes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from data_pipeline.adapters.archive import FileArchive
from data_pipeline.devtools.salla_samples import StoreSimulation, encode
from data_pipeline.domain.envelope import parse_envelope
from data_pipeline.service_layer.archive import archive_objects, archive_record

from bench.processes import clean_env, timed_cli, workdir

GROUP_COMMIT = 4000

_CHECK = """
import json, sys
import clickhouse_connect
client = clickhouse_connect.get_client(dsn="chdb://" + sys.argv[1])
def one(sql):
    return client.query(sql).result_rows[0]
orders, total = one("SELECT count(), sum(total) FROM analytics.orders")
lines, line_total = one("SELECT count(), sum(line_total) FROM analytics.sales_facts")
(raw,) = one("SELECT uniqExact(body_sha256) FROM analytics.raw_events")
print(json.dumps([orders, str(total), lines, str(line_total), raw]))
"""


def _archive(store: StoreSimulation, root: Path) -> int:
    archive = FileArchive(root)
    received = datetime.now(UTC)
    records = []
    for event in store.events:
        raw = encode(event)
        records.append(archive_record(parse_envelope(raw), raw, received, "webhook"))
    objects = 0
    for start in range(0, len(records), GROUP_COMMIT):
        for archived in archive_objects(records[start : start + GROUP_COMMIT]):
            objects += archive.put(archived.key, archived.data)
    return objects


def measure(orders: int | None = None) -> dict[str, Any]:
    orders = orders or int(os.environ.get("BENCH_DR_ORDERS", "40000"))
    store = StoreSimulation(merchant_id=8_000_003, seed=11)
    store.create_products()
    store.create_customers(200)
    for _ in range(orders):
        store.create_order()
    with workdir() as tmp:
        objects = _archive(store, tmp / "archive")
        seconds, _ = timed_cli(
            "rebuild",
            "--from-archive",
            (tmp / "archive").as_uri(),
            "--data-dir",
            str(tmp / "restored"),
        )
        checked = subprocess.run(
            [sys.executable, "-c", _CHECK, str(tmp / "restored" / "clickhouse")],
            env=clean_env(),
            capture_output=True,
            text=True,
            check=True,
        )
    got = json.loads(checked.stdout.splitlines()[-1])
    truth = store.truth
    want = [
        len(truth.live_orders()),
        str(truth.order_total_sum()),
        truth.line_count(),
        str(truth.line_total_sum()),
        len({encode(e) for e in store.events}),
    ]
    events = len(store.events)
    return {
        "events": events,
        "objects": objects,
        "rebuild_s": round(seconds, 2),
        "events_per_s": round(events / seconds),
        "minutes_per_million_events": round(1e6 / (events / seconds) / 60, 1),
        "exact": [Decimal(str(v)) for v in got] == [Decimal(str(v)) for v in want],
        "contract": got,
        "truth": want,
    }


def report(result: dict[str, Any]) -> str:
    return (
        f"DR drill: {result['events']:,} archived events in {result['objects']:,} objects "
        f"rebuilt into an empty warehouse in {result['rebuild_s']} s "
        f"({result['events_per_s']:,} events/s = {result['minutes_per_million_events']} min "
        f"per million events); contract equals the store's truth: {result['exact']}"
    )


if __name__ == "__main__":
    print(report(measure()))
