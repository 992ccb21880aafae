"""Bulk import of Salla envelopes: the worker's path, in big batches.

Each line (one envelope, JSON) goes through what a webhook delivery goes through: the same
transform and versions, the raw archive (source `import`), merchant state (installation and
tokens, applied only when newer) and a settlement per event, so a re-import (or importing events
that webhooks already delivered) loads nothing twice and is reported as duplicates. A line that
cannot load is reported with its line number and skipped; the others still load.

Throughput: events are loaded in batches of 4,000 (one insert per table, one snapshot refresh, one
settlement round trip each), and the cyclic garbage collector is held back while they are built.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from data_pipeline.adapters.state import StateStore, Verdict
from data_pipeline.adapters.token_cipher import TokenCipher
from data_pipeline.adapters.warehouse import LoadBatch, Warehouse
from data_pipeline.domain.envelope import parse_envelope
from data_pipeline.domain.events import transform
from data_pipeline.domain.model import MerchantChange, OrderItemSet
from data_pipeline.errors import InvalidPayload
from data_pipeline.service_layer.ingest import MAX_WEBHOOK_BYTES
from data_pipeline.service_layer.processing import apply_merchant_changes, archive_record

BATCH_EVENTS = 4000


@dataclass(frozen=True)
class ImportFailure:
    line: int
    reason: str


@dataclass
class ImportReport:
    lines: int = 0
    loaded: int = 0  # first time seen, modeled
    ignored: int = 0  # first time seen, an event the warehouse does not model
    duplicates: int = 0  # imported or delivered before (or twice in this input)
    line_items: int = 0
    failures: list[ImportFailure] = field(default_factory=list)

    def add(self, other: ImportReport, line_offset: int = 0) -> None:
        self.lines += other.lines
        self.loaded += other.loaded
        self.ignored += other.ignored
        self.duplicates += other.duplicates
        self.line_items += other.line_items
        self.failures += [ImportFailure(f.line + line_offset, f.reason) for f in other.failures]

    def as_dict(self) -> dict[str, object]:
        return {
            "lines": self.lines,
            "loaded": self.loaded,
            "ignored": self.ignored,
            "duplicates": self.duplicates,
            "lineItems": self.line_items,
            "failures": [{"line": f.line, "reason": f.reason} for f in self.failures],
        }


@dataclass
class _Prepared:
    batch: LoadBatch = field(default_factory=LoadBatch)
    settlements: list[tuple[str, str]] = field(default_factory=list)  # (body hash, outcome)
    changes: list[MerchantChange] = field(default_factory=list)
    line_items: int = 0


class EventImporter:
    def __init__(
        self,
        warehouse: Warehouse,
        state: StateStore,
        cipher: TokenCipher | None,
        *,
        batch_events: int = BATCH_EVENTS,
        received: datetime | None = None,
    ) -> None:
        self._warehouse = warehouse
        self._state = state
        self._cipher = cipher
        self._batch_events = batch_events
        self._received = received or datetime.now(UTC)

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
        chunk: list[tuple[int, bytes]] = []
        number = 0
        async for line in _lines(lines):
            number += 1
            chunk.append((number, line))
            if len(chunk) >= self._batch_events:
                await self._load(chunk, report, progress)
                chunk = []
        await self._load(chunk, report, progress)
        return report

    async def _load(
        self,
        chunk: list[tuple[int, bytes]],
        report: ImportReport,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        """One batch: transformed and written off the event loop (the service keeps answering
        webhooks during an import), then merchant state and settlements, never before the
        write. Sequential on purpose: transforming the next batch while this one is written
        measured slower (both hold the GIL for most of their time, and they thrash it)."""
        prepared = await asyncio.to_thread(self._prepare, chunk, report)
        if prepared.batch.size:
            await asyncio.to_thread(self._warehouse.write, prepared.batch)
        if prepared.changes:
            assert self._cipher is not None  # checked per line in _prepare
            await apply_merchant_changes(self._state, self._cipher, prepared.changes)
        # One "message" per event: importing it again is a redelivery, not a new event.
        verdicts = await self._state.settle_many(
            [(digest, f"import:{digest}", outcome) for digest, outcome in prepared.settlements]
        )
        for verdict, (_, outcome) in zip(verdicts, prepared.settlements, strict=True):
            if verdict is Verdict.FIRST or verdict is Verdict.RECOVERED:
                report.loaded += outcome == "loaded"
                report.ignored += outcome == "ignored"
            else:
                report.duplicates += 1
        report.line_items += prepared.line_items
        if progress is not None:
            progress(len(chunk), sum(len(raw) for _, raw in chunk))

    def _prepare(self, chunk: list[tuple[int, bytes]], report: ImportReport) -> _Prepared:
        prepared = _Prepared()
        for number, raw in chunk:
            report.lines += 1
            line = raw.strip()
            if not line:
                report.lines -= 1  # blank lines are not events
                continue
            if len(line) > MAX_WEBHOOK_BYTES:
                report.failures.append(ImportFailure(number, "line is over 1 MiB"))
                continue
            envelope = None
            try:
                envelope = parse_envelope(line)
                result = transform(envelope)
                if result.merchant_changes and self._cipher is None:
                    raise InvalidPayload("merchant tokens need TOKEN_ENCRYPTION_KEY to be stored")
            except InvalidPayload as error:
                if envelope is not None:  # a valid envelope is archived even when rejected
                    prepared.batch.raw_events.append(
                        archive_record(envelope, line, self._received, "import")
                    )
                report.failures.append(ImportFailure(number, str(error)[:300]))
                continue
            except Exception as error:  # a hostile line must not stop the rest
                reason = f"unexpected {type(error).__name__}: {error}"[:300]
                report.failures.append(ImportFailure(number, reason))
                continue
            prepared.batch.raw_events.append(
                archive_record(envelope, line, self._received, "import")
            )
            prepared.batch.entities.extend(result.entities)
            prepared.changes.extend(result.merchant_changes)
            prepared.settlements.append(
                (envelope.body_sha256, "loaded" if result.modeled else "ignored")
            )
            prepared.line_items += sum(
                len(e.items) for e in result.entities if isinstance(e, OrderItemSet)
            )
        return prepared


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


async def _lines(lines: AsyncIterable[bytes] | Iterable[bytes]) -> AsyncIterable[bytes]:
    if isinstance(lines, AsyncIterable):
        async for line in lines:
            yield line
    else:
        for line in lines:
            yield line
