"""Group commit: concurrent deliveries share one warehouse insert.

Each caller's `load` returns only after the insert holding its rows is confirmed, so a 200 to
QStash always means "written". While one insert is in flight, new batches queue up and go out
together in the next one: no timer, no added latency when idle, big inserts under load (what
ClickHouse wants instead of many tiny ones).

With a raw archive, each insert's raw events are also written to it, at the same time: the
archive is complete even for events the warehouse then fails to take (service_layer/archive.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from data_pipeline.adapters.warehouse import LoadBatch, Warehouse
from data_pipeline.flushers import Flushers
from data_pipeline.observability.metrics import PipelineMetrics
from data_pipeline.service_layer.archive import RawArchive


class GroupCommitLoader:
    def __init__(
        self,
        warehouse: Warehouse,
        metrics: PipelineMetrics,
        *,
        max_rows: int = 20_000,
        max_in_flight: int = 1,
        archive: RawArchive | None = None,
    ) -> None:
        self._archive = archive
        self._warehouse = warehouse
        self._metrics = metrics
        self._max_rows = max_rows
        self._pending: deque[tuple[LoadBatch, asyncio.Future[None]]] = deque()
        self._flushers = Flushers(self._drain, limit=max_in_flight)

    async def load(self, batch: LoadBatch) -> None:
        if batch.size == 0:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((batch, future))
        self._flushers.wake()
        await future

    async def drain(self) -> None:
        """Wait until everything queued so far is written (used at shutdown)."""
        await self._flushers.wait()

    async def _drain(self) -> None:
        while self._pending:
            await self._flush(self._take())

    async def _flush(self, taken: list[tuple[LoadBatch, asyncio.Future[None]]]) -> None:
        try:
            combined = LoadBatch.combine(batch for batch, _ in taken)
            started = time.perf_counter()
            await self._write(combined)
        except Exception as error:  # every waiter gets the failure; QStash retries each one
            for _, future in taken:
                if not future.done():
                    future.set_exception(error)
            return
        except BaseException:  # cancelled (shutdown): no waiter is left hanging
            for _, future in taken:
                future.cancel()
            raise
        self._metrics.observe_flush(combined.size, time.perf_counter() - started)
        for _, future in taken:
            if not future.done():
                future.set_result(None)

    async def _write(self, batch: LoadBatch) -> None:
        """The warehouse insert and the archive write together; the warehouse's failure first
        (it decides the retry), then the archive's (the rows are in, the event is not archived:
        retried all the same)."""
        writing = asyncio.ensure_future(asyncio.to_thread(self._warehouse.write, batch))
        if self._archive is None or not batch.raw_events:
            await writing
            return
        archiving = asyncio.ensure_future(self._archive.write(batch.raw_events))
        await asyncio.wait([writing, archiving])
        for step in (writing, archiving):
            step.result()

    def _take(self) -> list[tuple[LoadBatch, asyncio.Future[None]]]:
        taken, rows = [], 0
        while self._pending and (not taken or rows + self._pending[0][0].size <= self._max_rows):
            entry = self._pending.popleft()
            taken.append(entry)
            rows += entry[0].size
        return taken
