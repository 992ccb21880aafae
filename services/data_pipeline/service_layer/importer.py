"""Bulk import of Salla envelopes: the worker's path, in big batches.

Each line (one envelope, JSON) goes through what a webhook delivery goes through: the same
transform and versions, the raw archive (source `import`), merchant state (installation and
tokens, applied only when newer) and a settlement per event, so a re-import (or importing events
that webhooks already delivered) loads nothing twice and is reported as duplicates. A line that
cannot load is reported with its line number and skipped; the others still load.

Throughput: events are inserted in batches of 4,000 (one insert per table), and the current state
of what the batches touched is refreshed once 16,000 events are written (and at the end): one
refresh of many objects costs less per object than several small ones. A batch's events are
settled (and its merchant state applied) only after that refresh, when the read contract shows
them. The cyclic garbage collector is held back while batches are built. With `processes` > 1
(the CLI's default: one per core), batches are parsed, transformed and encoded for the
warehouse in worker processes while this process writes the previous one.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from data_pipeline.adapters.state import StateStore, Verdict
from data_pipeline.adapters.token_cipher import TokenCipher
from data_pipeline.adapters.warehouse import BatchEncoding, Touched, Warehouse
from data_pipeline.compiled_domain import build_in_use
from data_pipeline.service_layer.import_batches import (
    BatchPreparer,
    Chunk,
    ImportReport,
    PreparedBatch,
    encoder_channel,
    prepare_in_worker,
    publish_encoder,
    worker_started,
)
from data_pipeline.service_layer.import_worker_start import start_import_worker
from data_pipeline.service_layer.merchant_state import apply_merchant_changes

BATCH_EVENTS = 4000
# Events written before the objects they touched are refreshed and they are settled (counted in
# lines, so that a file of events the warehouse does not model is settled as it goes too).
# Refreshing 40,000 orders 4,000 at a time took 1.8-2.2 s, 16,000 at a time 1.3-1.4 s (and writes
# a quarter of the parts); see docs/benchmarks.md.
REFRESH_EVENTS = 16_000


@dataclass
class _Unsettled:
    """Batches written whose objects' current state is not yet refreshed, in input order."""

    touched: Touched = field(default_factory=dict)
    batches: deque[tuple[PreparedBatch, Chunk]] = field(default_factory=deque)

    @property
    def lines(self) -> int:
        return sum(len(chunk.lines) for _, chunk in self.batches)

    def add(self, prepared: PreparedBatch, chunk: Chunk, touched: Touched) -> None:
        for table, keys in touched.items():
            self.touched.setdefault(table, set()).update(keys)
        self.batches.append((prepared, chunk))


class EventImporter:
    def __init__(
        self,
        warehouse: Warehouse,
        state: StateStore,
        cipher: TokenCipher | None,
        *,
        batch_events: int = BATCH_EVENTS,
        received: datetime | None = None,
        processes: int = 1,
        archived: bool = False,
        refresh_events: int = REFRESH_EVENTS,
        migrate: bool = False,
        workers: WorkerPool | None = None,
    ) -> None:
        """`processes` > 1: batches are parsed, transformed and encoded in that many worker
        processes while this one writes the previous batch (for inputs of more than one batch;
        a service importing a request's worth keeps 1). `archived`: the lines are raw archive
        records, loaded with their own hash, reception time and source; their merchant state
        is not applied (the archive holds no credentials). `migrate`: bring the warehouse's
        schema up to date first (a new data dir gets its schema); worker processes started
        early transform the first batches meanwhile, and encode them once it is done.
        `workers`: processes started before (`start_pool`, while the caller imports and opens
        the warehouse), which `run` takes over; `close` stops them if no `run` does."""
        self._archived = archived
        self._migrate = migrate
        self._pool = workers
        self._warehouse = warehouse
        self._state = state
        self._cipher = cipher
        self._batch_events = batch_events
        self._received = received or datetime.now(UTC)
        self._processes = processes
        self._refresh_events = refresh_events

    def close(self) -> None:
        """Stop the worker processes given that no `run` took over."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()

    async def run(
        self,
        lines: AsyncIterable[bytes] | Iterable[bytes],
        *,
        progress: Callable[[int, int], None] | None = None,  # (lines, bytes) done
    ) -> ImportReport:
        with _few_collections():
            return await self._run(lines, progress)

    async def _run(
        self,
        lines: AsyncIterable[bytes] | Iterable[bytes],
        progress: Callable[[int, int], None] | None,
    ) -> ImportReport:
        report = ImportReport()
        # The schema is checked (and migrated) in a thread while the first chunks are read and
        # transformed; nothing is written before it is done.
        schema = asyncio.ensure_future(asyncio.to_thread(self._encoder))
        task = BatchPreparer(None, self._cipher is not None, self._received, self._archived)
        pool, self._pool = self._pool, None
        unsettled = _Unsettled()
        with _Preparers(task, self._processes, pool, schema) as preparers:
            # Batches are written and settled in input order; up to `ahead` more are being
            # prepared meanwhile.
            pending: deque[tuple[asyncio.Future[PreparedBatch], Chunk]] = deque()
            try:
                async for chunk in _chunks(lines, self._batch_events):
                    full = len(chunk.lines) == self._batch_events
                    pending.append((preparers.submit(chunk, full=full), chunk))
                    while len(pending) > preparers.ahead:
                        await schema  # its failure is the one to report, not a worker's
                        await self._write(*pending.popleft(), report, unsettled, progress)
                await schema
                while pending:
                    await self._write(*pending.popleft(), report, unsettled, progress)
            except Exception:
                # The schema's thread is not left running (the caller closes the warehouse
                # next), and the batches being prepared are dropped without a word (their
                # errors, if any, follow from this one).
                await asyncio.wait([schema])
                _dropped(schema, *(preparing for preparing, _ in pending))
                # What was written before the failure is still made visible and settled if the
                # warehouse allows (a second run then skips it, as the report says).
                with contextlib.suppress(Exception):
                    await self._settle(unsettled, report, progress)
                raise
            await self._settle(unsettled, report, progress)
        return report

    def _encoder(self) -> BatchEncoding:
        if self._migrate:
            self._warehouse.migrate()
        return self._warehouse.batch_encoder()

    async def _write(
        self,
        preparing: asyncio.Future[PreparedBatch],
        chunk: Chunk,
        report: ImportReport,
        unsettled: _Unsettled,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        """One batch inserted (off the event loop: the service keeps answering webhooks during
        an import); settled with the others once enough events wait for their refresh."""
        prepared = await preparing
        report.add(prepared.report)
        touched: Touched = {}
        if prepared.encoded is not None:
            touched = await asyncio.to_thread(
                self._warehouse.write_encoded, prepared.encoded, refresh=False
            )
            prepared.encoded = None  # written: its bytes need not wait for the refresh
        unsettled.add(prepared, chunk, touched)
        if unsettled.lines >= self._refresh_events:
            await self._settle(unsettled, report, progress)

    async def _settle(
        self,
        unsettled: _Unsettled,
        report: ImportReport,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        """The written batches' objects refreshed, then their merchant state (batch by batch,
        in input order) and their settlements, never before: a settled event is one the read
        contract shows. The settlements of all the batches go in one call (one transaction in
        SQLite): the settlement keys are random hashes, so each call rewrote most of the index's
        pages; settling 160,000 events 16,000 at a time instead of 4,000 measured 1.45-1.78 s
        against 2.30-2.54 s."""
        if unsettled.touched:
            await asyncio.to_thread(self._warehouse.refresh, unsettled.touched)
            unsettled.touched = {}
        if not unsettled.batches:
            return
        for prepared, _ in unsettled.batches:
            if prepared.changes:
                assert self._cipher is not None  # checked per line when preparing
                await apply_merchant_changes(self._state, self._cipher, prepared.changes)
                prepared.changes = []  # applied (a retry after a failed settlement skips them)
        # One "message" per event: importing it again is a redelivery, not a new event.
        verdicts = await self._state.settle_many(
            [
                (digest, f"import:{digest}", outcome)
                for prepared, _ in unsettled.batches
                for digest, outcome in prepared.settlements
            ]
        )
        start = 0
        while unsettled.batches:
            prepared, chunk = unsettled.batches.popleft()
            own = verdicts[start : start + len(prepared.settlements)]
            start += len(prepared.settlements)
            for (_, outcome), verdict in zip(prepared.settlements, own, strict=True):
                if verdict is Verdict.FIRST or verdict is Verdict.RECOVERED:
                    report.loaded += outcome == "loaded"
                    report.ignored += outcome == "ignored"
                else:
                    report.duplicates += 1
            if progress is not None:
                progress(len(chunk.lines), chunk.size)


class _Preparers:
    """Prepares chunks in this process (one at a time, in a thread: the GIL makes overlapping
    two Python-heavy steps in threads slower, measured) or, from the second full chunk on (or
    with a pool started early), in `processes` worker processes, two chunks each ahead of the
    writes (one kept them idle while this process refreshed several batches' objects). Not
    before: spawning them costs about a second, which two batches do not win back (4,212
    events: 3.3 s with workers from the first full chunk, 2.5 s without).

    Chunks go to worker processes before the schema is known (`schema` pending): they transform
    them meanwhile and wait for the encoder, which is published to them once it is."""

    def __init__(
        self,
        task: BatchPreparer,
        processes: int,
        pool: WorkerPool | None,
        schema: asyncio.Future[BatchEncoding],
    ) -> None:
        self._task = task
        self._processes = processes
        self._pool = pool
        self._full_chunks = 0
        self._schema = schema
        schema.add_done_callback(self._schema_known)

    @property
    def ahead(self) -> int:
        return 2 * self._processes if self._pool is not None else 0

    def submit(self, chunk: Chunk, *, full: bool) -> asyncio.Future[PreparedBatch]:
        self._full_chunks += full
        if self._pool is None and self._processes > 1 and self._full_chunks >= 2:
            self._pool = start_pool(self._processes)
        if self._pool is not None:
            return asyncio.wrap_future(self._pool.submit(prepare_in_worker, self._task, chunk))
        return asyncio.ensure_future(self._prepare_here(chunk))

    async def _prepare_here(self, chunk: Chunk) -> PreparedBatch:
        task = replace(self._task, encoder=await self._schema)
        return await asyncio.to_thread(task.prepare, chunk)

    def _schema_known(self, schema: asyncio.Future[BatchEncoding]) -> None:
        failed = schema.cancelled() or schema.exception() is not None
        encoder = None if failed else schema.result()
        if encoder is not None:
            self._task = replace(self._task, encoder=encoder)  # for chunks submitted from now
        if self._pool is not None:  # its workers may wait for it
            self._pool.publish(encoder)

    def __enter__(self) -> _Preparers:
        return self

    def __exit__(self, *_: object) -> None:
        if self._pool is not None:
            if not self._schema.done():  # workers waiting for an encoder stop waiting
                self._pool.publish(None)
            self._pool.shutdown()


class WorkerPool:
    """The worker processes of one run, with the channel that hands them the encoder."""

    def __init__(self, processes: int) -> None:
        # Spawned, not forked: this process runs chDB's and the event loop's threads. They run
        # the domain this process runs, compiled or not (data_pipeline/compiled_domain.py).
        self._channel = encoder_channel()
        self._processes = processes
        self._closed = False
        self._executor = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=start_import_worker,
            initargs=(self._channel, build_in_use()),
        )

    def submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        return self._executor.submit(function, *args)

    def publish(self, encoder: BatchEncoding | None) -> None:
        if not self._closed:
            publish_encoder(self._channel, encoder, self._processes)

    def shutdown(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._channel.close()
        self._channel.join_thread()


def start_pool(processes: int) -> WorkerPool:
    """Worker processes, started now rather than at their first batch."""
    pool = WorkerPool(processes)
    for _ in range(processes):  # a process is spawned per submit while none is idle
        pool.submit(worker_started)
    return pool


def _dropped(*futures: asyncio.Future[Any]) -> None:
    """Futures no one will await: cancelled, or their outcome taken when it comes (asyncio
    logs an exception no one retrieved)."""
    for future in futures:
        future.cancel()
        future.add_done_callback(lambda done: done.cancelled() or done.exception())


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    """A batch allocates millions of small objects that live until it is written. With the
    default threshold (700 allocations) the cyclic collector runs thousands of times over them,
    which measured 5x the cost of building the order rows. They hold no reference cycles, so
    reference counting frees them and a rarer collection loses nothing."""
    previous = gc.get_threshold()
    gc.set_threshold(100_000, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


async def _chunks(lines: AsyncIterable[bytes] | Iterable[bytes], size: int) -> AsyncIterator[Chunk]:
    if not isinstance(lines, AsyncIterable):  # a file: a chunk's lines read at once, not one
        numbered = enumerate(lines, start=1)  # by one through async generators (~2 µs a line)
        while chunk := list(islice(numbered, size)):
            yield Chunk(chunk)
        return
    chunk: list[tuple[int, bytes]] = []
    number = 0
    async for line in lines:
        number += 1
        chunk.append((number, line))
        if len(chunk) >= size:
            yield Chunk(chunk)
            chunk = []
    if chunk:
        yield Chunk(chunk)
