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
        self._max_in_flight = max_in_flight
        self._warehouse = warehouse
        self._metrics = metrics
        self._max_rows = max_rows
        self._pending: deque[tuple[LoadBatch, asyncio.Future[None]]] = deque()
        self._flushers: set[asyncio.Task[None]] = set()

    async def load(self, batch: LoadBatch) -> None:
        if batch.size == 0:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((batch, future))
        if len(self._flushers) < self._max_in_flight:
            flusher = asyncio.create_task(self._drain())
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        await future

    async def drain(self) -> None:
        """Wait until everything queued so far is written (used at shutdown)."""
        while self._flushers:
            await asyncio.gather(*self._flushers, return_exceptions=True)

    async def _drain(self) -> None:
        while self._pending:
            taken = self._take()
            combined = LoadBatch.combine(batch for batch, _ in taken)
            started = time.perf_counter()
            try:
                await self._write(combined)
            except Exception as error:  # every waiter gets the failure; QStash retries each one
                for _, future in taken:
                    if not future.done():
                        future.set_exception(error)
                continue
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
