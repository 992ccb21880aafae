"""The raw archive outside the warehouse, and rebuilding a warehouse from it (issue 15).

Through the whole local path (signed webhooks, the local QStash server, the worker): every
accepted event ends up in the archive exactly once by content hash, also when the warehouse
dead-letters it; an archive outage (S3 on a local S3-compatible server, stopped) loses nothing
and is caught up; a rebuild from the archive into an empty warehouse equals the original
contract in every table, and an interrupted rebuild resumes.
"""

import asyncio
import hashlib
import random
import subprocess
import sys

import pytest
from data_pipeline.adapters.archive import open_archive
from data_pipeline.adapters.clickhouse_schema import READ_CONTRACT
from data_pipeline.adapters.sqlite_state import SqliteStateStore
from data_pipeline.devtools.salla_samples import (
    delivery_schedule,
    demo_store,
    encode,
    sample_envelope,
)
from data_pipeline.errors import TransientError
from data_pipeline.service_layer.archive import archived_event, key_parts, object_lines
from data_pipeline.service_layer.rebuild import ArchiveRebuild, plan

from tests.e2e.test_realtime_path import metric_now, wait_for
from tests.support.cli import clean_env, run_cli
from tests.support.harness import warehouse_for
from tests.support.s3_server import local_s3

pytestmark = pytest.mark.slow

CONTRACT = READ_CONTRACT  # every table the app reads


def archived_hashes(url):
    """Every event in the archive, as a list of body hashes (repeats show as repeats)."""
    store = open_archive(url)
    hashes = []
    for key in store.names():
        assert key_parts(key) is not None, key
        hashes += [archived_event(line).sha256 for line in object_lines(store.get(key))]
    return hashes


def poisoned_order():
    event = sample_envelope("order.created")
    event["data"]["id"] = 99_000_001
    event["data"]["amounts"]["total"] = {"amount": "1,234.50", "currency": "SAR"}  # unreadable
    return encode(event)


async def test_every_accepted_event_is_archived_exactly_once_including_rejected_ones(harness):
    store = demo_store(seed=41)
    deliveries = delivery_schedule(store.events, duplicate_share=0.4)
    deliveries.append(poisoned_order())
    random.Random(5).shuffle(deliveries)
    responses = await asyncio.gather(*(harness.send(body) for body in deliveries))
    assert {r.status_code for r in responses} == {200}
    await harness.settle()
    expected = {hashlib.sha256(body).hexdigest() for body in deliveries}
    hashes = archived_hashes(harness.settings.archive_url)
    assert sorted(hashes) == sorted(expected)  # each once: redeliveries are not archived again
    assert harness.metric("pipeline_events_settled_total", outcome="dead_lettered") == 1
    assert harness.metric("pipeline_archive_pending_events") == 0


async def test_events_the_warehouse_dead_letters_are_in_the_archive(harness):
    db = harness.settings.clickhouse_database
    harness.container.warehouse._connect().command(f"DETACH TABLE {db}.raw_events")
    store = demo_store(seed=42, orders=4)
    for event in store.events:
        assert (await harness.send(encode(event))).status_code == 200
    queue = harness.container.queue.client
    await wait_for(queue.dlq.list, lambda page: len(page.messages) == len(store.events))
    assert sorted(archived_hashes(harness.settings.archive_url)) == sorted(
        hashlib.sha256(encode(event)).hexdigest() for event in store.events
    )


async def test_an_s3_archive_outage_loads_the_warehouse_and_catches_up(harness_with, monkeypatch):
    with local_s3(monkeypatch) as s3:
        url = f"s3://{s3.create_bucket()}/raw"
        harness = await harness_with(
            raw_archive_url=url, qstash_retries=8, qstash_retry_delay="200 * pow(2, retried)"
        )
        s3.stop()
        store = demo_store(seed=43, orders=4)
        for event in store.events:
            assert (await harness.send(encode(event))).status_code == 200
        db = harness.settings.clickhouse_database
        # The rows are in while the archive is down; the deliveries are retried for it.
        await wait_for(
            lambda: harness.sql(f"SELECT count() FROM {db}.orders"),
            lambda rows: rows == [(len(store.truth.live_orders()),)],
        )
        await wait_for(
            lambda: metric_now(harness, "pipeline_archive_pending_events"),
            lambda pending: pending > 0,
        )
        assert harness.metric("pipeline_archive_write_failures_total") > 0
        s3.start_again()
        await harness.settle(timeout=60)
        assert harness.metric("pipeline_archive_pending_events") == 0
        assert harness.metric("pipeline_events_settled_total", outcome="dead_lettered") == 0
        assert sorted(archived_hashes(url)) == sorted(
            hashlib.sha256(encode(event)).hexdigest() for event in store.events
        )


async def contract_rows(warehouse, database):
    rows = {}
    for view in (*CONTRACT, "raw_events"):
        source = f"{database}.{view}" + (" FINAL" if view == "raw_events" else "")
        columns = "*" if view != "raw_events" else "merchant_id, body_sha256, event, source, body"
        result = await asyncio.to_thread(
            warehouse.query,
            f"SELECT {columns} FROM {source} ORDER BY ALL",
        )
        rows[view] = result.rows
    return rows


async def test_a_rebuild_into_an_empty_warehouse_equals_the_original_contract(
    harness, chdb_path, tmp_path
):
    store = demo_store(seed=44)
    deliveries = delivery_schedule(store.events, duplicate_share=0.3)
    deliveries.append(poisoned_order())
    for body in deliveries:
        assert (await harness.send(body)).status_code == 200
    await harness.settle()
    original = await contract_rows(
        harness.container.warehouse, harness.settings.clickhouse_database
    )
    assert all(original[view] for view in ("orders", "sales_facts", "products", "invoices"))

    archive = open_archive(harness.settings.archive_url)
    target = warehouse_for(chdb_path)  # empty, migrated
    state = SqliteStateStore(tmp_path / "rebuild" / "state.sqlite3")
    job = ArchiveRebuild(archive, target, state, tmp_path / "rebuild" / "done", batch_events=16)
    report = await job.run(plan(archive, since=None, merchant=None))
    await state.close()
    distinct = len(set(deliveries))
    assert report.events == distinct and report.duplicates == 0
    assert report.loaded + report.ignored == distinct - 1  # all but the poisoned order
    [failure] = report.failures
    assert "order.amounts.total" in failure.reason and failure.line is not None
    assert await contract_rows(target, target.database) == original


class FailingAfter:
    """A warehouse whose writes fail after `allowed` of them: an interrupted rebuild."""

    def __init__(self, warehouse, allowed):
        self._warehouse, self._allowed = warehouse, allowed

    def __getattr__(self, name):
        return getattr(self._warehouse, name)

    def write_encoded(self, encoded, **options):
        if self._allowed == 0:
            raise TransientError("warehouse insert failed: connection reset (injected)")
        self._allowed -= 1
        return self._warehouse.write_encoded(encoded, **options)


async def test_an_interrupted_rebuild_resumes_and_ends_complete(harness, chdb_path, tmp_path):
    store = demo_store(seed=45, orders=30)
    for event in store.events:
        assert (await harness.send(encode(event))).status_code == 200
    await harness.settle()
    original = await contract_rows(
        harness.container.warehouse, harness.settings.clickhouse_database
    )
    archive = open_archive(harness.settings.archive_url)
    keys = plan(archive, since=None, merchant=None)
    target = warehouse_for(chdb_path)
    run_dir = tmp_path / "rebuild"
    run_dir.mkdir()

    async def rebuild(warehouse):
        state = SqliteStateStore(run_dir / "state.sqlite3")
        try:
            return await ArchiveRebuild(
                archive, warehouse, state, run_dir / "done", batch_events=8
            ).run(keys)
        finally:
            await state.close()

    with pytest.raises(TransientError, match="injected"):
        await rebuild(FailingAfter(target, allowed=3))
    finished = await rebuild(target)
    assert 0 < finished.resumed < len(keys)  # the first run's completed objects are skipped
    assert not finished.failures
    assert await contract_rows(target, target.database) == original


_COUNTS = """
import json, sys
import clickhouse_connect
client = clickhouse_connect.get_client(dsn="chdb://" + sys.argv[1])
print(json.dumps([client.query(f"SELECT count() FROM analytics.{view}").result_rows[0][0]
                  for view in sys.argv[2:]]))
"""


async def test_the_rebuild_command_reports_and_filters(harness, tmp_path):
    store = demo_store(seed=46, orders=12)
    other = demo_store(merchant_id=777_001, seed=47, orders=5)
    for event in [*store.events, *other.events]:
        assert (await harness.send(encode(event))).status_code == 200
    await harness.settle()
    url = harness.settings.archive_url
    data = tmp_path / "rebuilt"
    only = run_cli(
        "rebuild", "--from-archive", url, "--merchant", "777001", "--data-dir", str(data)
    )
    assert only.returncode == 0, only.stdout + only.stderr
    assert f"{len(other.events):,} events read: " in only.stdout
    assert f"holds {len(other.events):,} distinct raw events" in only.stdout
    again = run_cli(
        "rebuild", "--from-archive", url, "--merchant", "777001", "--data-dir", str(data)
    )
    assert "0 events read" in again.stdout and "done by an earlier run" in again.stdout
    bad = await asyncio.to_thread(
        run_cli, "rebuild", "--from-archive", url, "--since", "yesterday", "--data-dir", str(data)
    )
    assert bad.returncode == 2 and "not a date" in bad.stdout + bad.stderr
    finished = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _COUNTS, str((data / "clickhouse").resolve()), "orders"],
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(),
    )
    assert finished.stdout.strip() == f"[{len(other.truth.live_orders())}]"
