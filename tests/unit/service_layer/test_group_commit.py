"""The group-commit loader: every caller's load returns once its rows are written, whatever the
interleaving of callers and flushes (a load left waiting is a delivery QStash never gets an
answer for)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from data_pipeline.adapters.warehouse import LoadBatch, QueryResult, RawEvent, Warehouse
from data_pipeline.flushers import Flushers
from data_pipeline.observability.metrics import PipelineMetrics
from data_pipeline.service_layer.loader import GroupCommitLoader
from prometheus_client import CollectorRegistry


class RecordingWarehouse(Warehouse):
    """Keeps what it is given; `fail_next` makes the next write raise."""

    def __init__(self) -> None:
        self.written: list[str] = []
        self.writes = 0
        self.fail_next = False
        self._lock = threading.Lock()

    def write(self, batch: LoadBatch) -> None:
        with self._lock:
            self.writes += 1
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("warehouse unavailable")
            self.written.extend(event.body.decode() for event in batch.raw_events)

    def migrate(self) -> list[str]:
        return []

    def batch_encoder(self) -> Any:
        raise NotImplementedError

    def write_encoded(self, encoded: Any, *, refresh: bool = True) -> Any:
        raise NotImplementedError

    def refresh(self, touched: Any) -> None:
        raise NotImplementedError

    def query(self, sql: str, parameters: Any = None, *, read_after_write: bool = False) -> Any:
        return QueryResult(columns=(), rows=[])

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None


def _batch(body: str) -> LoadBatch:
    now = datetime.now(UTC)
    event = RawEvent(1, body, "order.created", now, now, "test", body.encode())
    return LoadBatch(raw_events=[event])


def _loader(warehouse: Warehouse) -> GroupCommitLoader:
    return GroupCommitLoader(warehouse, PipelineMetrics(CollectorRegistry()))


async def test_a_load_right_after_a_flush_ends_is_written() -> None:
    """The caller whose rows ended a flush loads again at once: its wake-up runs before the
    finished flusher has left the loader's books, so the second load must not count on it."""
    warehouse = RecordingWarehouse()
    loader = _loader(warehouse)
    for index in range(20):
        await asyncio.wait_for(loader.load(_batch(f"body-{index}")), timeout=5)
    assert warehouse.written == [f"body-{index}" for index in range(20)]


async def test_concurrent_loads_share_inserts_and_all_return() -> None:
    warehouse = RecordingWarehouse()
    loader = _loader(warehouse)

    async def caller(name: str) -> None:
        for index in range(10):
            await loader.load(_batch(f"{name}-{index}"))
            await asyncio.sleep(0)

    await asyncio.wait_for(asyncio.gather(*(caller(f"c{n}") for n in range(30))), timeout=10)
    assert sorted(warehouse.written) == sorted(f"c{n}-{i}" for n in range(30) for i in range(10))
    assert warehouse.writes < 300  # shared: fewer inserts than loads


async def test_a_failed_insert_fails_each_of_its_callers_and_the_next_load_works() -> None:
    warehouse = RecordingWarehouse()
    loader = _loader(warehouse)
    warehouse.fail_next = True
    with pytest.raises(RuntimeError, match="warehouse unavailable"):
        await asyncio.wait_for(loader.load(_batch("lost")), timeout=5)
    await asyncio.wait_for(loader.load(_batch("kept")), timeout=5)
    assert warehouse.written == ["kept"]


async def test_an_empty_batch_returns_without_an_insert() -> None:
    warehouse = RecordingWarehouse()
    await asyncio.wait_for(_loader(warehouse).load(LoadBatch()), timeout=5)
    assert warehouse.writes == 0


async def test_drain_waits_for_queued_loads() -> None:
    warehouse = RecordingWarehouse()
    loader = _loader(warehouse)
    pending = [asyncio.create_task(loader.load(_batch(f"b{index}"))) for index in range(5)]
    await asyncio.sleep(0)
    await asyncio.wait_for(loader.drain(), timeout=5)
    assert sorted(warehouse.written) == [f"b{index}" for index in range(5)]
    await asyncio.gather(*pending)


async def test_a_flusher_that_just_finished_does_not_count_against_a_new_wake() -> None:
    """The bookkeeping itself (also the QStash publisher's and the embeddings'): a caller woken
    by the last item of a drain queues again at once and is still drained."""
    queue: list[asyncio.Future[None]] = []

    async def drain() -> None:
        while queue:
            item = queue.pop(0)
            await asyncio.sleep(0)
            item.set_result(None)

    flushers = Flushers(drain, limit=1)

    async def put() -> None:
        future = asyncio.get_running_loop().create_future()
        queue.append(future)
        flushers.wake()
        await future

    for _ in range(5):
        await asyncio.wait_for(put(), timeout=5)
    await asyncio.wait_for(flushers.wait(), timeout=5)
    assert queue == []
