"""Preparing a bulk import's batches: parsing, transforming and encoding lines for the warehouse.

What the import's worker processes run (service_layer/importer.py writes and settles what they
prepare). Kept to the domain, the raw archive's record and the warehouse's encoder: each import
spawns a worker per core, and importing the webhook path's service layer (RAG, metrics, logging)
as well cost each one ~0.4 s of CPU at start, while the command loads chDB beside it (measured).
"""

from __future__ import annotations

import gc
import multiprocessing
import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.queues import Queue
from typing import Any

from data_pipeline.adapters.warehouse import BatchEncoding, LoadBatch
from data_pipeline.domain.envelope import MAX_WEBHOOK_BYTES, parse_envelope
from data_pipeline.domain.events import transform
from data_pipeline.domain.model import MerchantChange, OrderItemSet
from data_pipeline.errors import InvalidPayload
from data_pipeline.service_layer.archive import archive_record, archived_event


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


@dataclass(frozen=True)
class Chunk:
    lines: list[tuple[int, bytes]]  # (line number, line)

    @property
    def size(self) -> int:
        return sum(len(raw) for _, raw in self.lines)


@dataclass
class PreparedBatch:
    encoded: Any  # the load batch as the warehouse's encoder made it (None: nothing to write)
    report: ImportReport  # lines and failures of this chunk
    settlements: list[tuple[str, str]] = field(default_factory=list)  # (body hash, outcome)
    changes: list[MerchantChange] = field(default_factory=list)


@dataclass(frozen=True)
class BatchPreparer:
    """What preparing a chunk needs; picklable (sent with each chunk to a worker process: the
    encoder is the tables' column type names, a few kilobytes). Without an encoder (the
    warehouse's schema is still being checked), a worker process transforms the chunk and then
    waits for the one its run publishes (`publish_encoder`)."""

    encoder: BatchEncoding | None
    tokens_storable: bool
    received: datetime
    archived: bool  # lines are raw archive records (service_layer/archive.py)

    def prepare(
        self, chunk: Chunk, published: Callable[[], BatchEncoding] | None = None
    ) -> PreparedBatch:
        """The chunk parsed, transformed and encoded; without an encoder of its own, with the
        one `published` gives once the chunk is transformed (a worker process waits for it)."""
        prepared, batch = self._transform(chunk)
        if batch.size:
            encoder = self.encoder or (published() if published else None)
            if encoder is None:
                raise RuntimeError("a chunk to encode before the schema is known")
            prepared.encoded = encoder.encode(batch)
        return prepared

    def _transform(self, chunk: Chunk) -> tuple[PreparedBatch, LoadBatch]:
        """The chunk's lines parsed and transformed: the report, settlements and merchant
        changes, and the rows to encode."""
        batch = LoadBatch()
        prepared = PreparedBatch(encoded=None, report=ImportReport())
        report = prepared.report
        for number, raw in chunk.lines:
            line = raw.strip()
            if not line:
                continue  # blank lines are not events
            report.lines += 1
            if len(line) > MAX_WEBHOOK_BYTES:
                report.failures.append(ImportFailure(number, "line is over 1 MiB"))
                continue
            envelope = None
            body, received, source = line, self.received, "import"
            try:
                if self.archived:  # the body is already redacted; its hash is the original's
                    record = archived_event(line)
                    body, received, source = record.body, record.received_at, record.source
                    envelope = parse_envelope(body, digest=record.sha256)
                else:
                    envelope = parse_envelope(body)
                result = transform(envelope)
                changes = [] if self.archived else result.merchant_changes
                if changes and not self.tokens_storable:
                    raise InvalidPayload("merchant tokens need TOKEN_ENCRYPTION_KEY to be stored")
            except InvalidPayload as error:
                if envelope is not None:  # a valid envelope is archived even when rejected
                    batch.raw_events.append(archive_record(envelope, body, received, source))
                report.failures.append(ImportFailure(number, str(error)[:300]))
                continue
            except Exception as error:  # a hostile line must not stop the rest
                reason = f"unexpected {type(error).__name__}: {error}"[:300]
                report.failures.append(ImportFailure(number, reason))
                continue
            batch.raw_events.append(archive_record(envelope, body, received, source))
            batch.entities.extend(result.entities)
            prepared.changes.extend(changes)
            prepared.settlements.append(
                (envelope.body_sha256, "loaded" if result.modeled else "ignored")
            )
            for entity in result.entities:
                if type(entity) is OrderItemSet:
                    report.line_items += len(entity.items)
        return prepared, batch


# A worker process's way to the encoder of chunks sent before the schema was known: its pool's
# channel (given at start), and what came through it (an encoder, or the run's word that none
# will come: the run failed before its schema was ready).
_channel: Queue[BatchEncoding | None] | None = None
_published: list[BatchEncoding | None] = []


def encoder_channel() -> Queue[BatchEncoding | None]:
    """A channel for one pool of (spawned) worker processes: see `publish_encoder`."""
    return multiprocessing.get_context("spawn").Queue()


def publish_encoder(
    channel: Queue[BatchEncoding | None], encoder: BatchEncoding | None, processes: int
) -> None:
    """Hands `encoder` (None: the run stopped before the schema was ready) to each of a pool's
    `processes` worker processes; each takes one copy, the first time it needs it."""
    for _ in range(processes):
        channel.put(encoder)


def _published_encoder() -> BatchEncoding:
    if not _published:
        if _channel is None:
            raise RuntimeError("this worker process has no encoder channel")
        parent = multiprocessing.parent_process()
        while not _published:
            try:
                _published.append(_channel.get(timeout=1.0))
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    raise RuntimeError("the import stopped (its process is gone)") from None
    encoder = _published[0]
    if encoder is None:
        raise RuntimeError("the import stopped before the warehouse was ready")
    return encoder


def start_worker(channel: Queue[BatchEncoding | None] | None = None) -> None:
    """A worker process's initializer."""
    global _channel
    _channel = channel
    # A worker only prepares batches, and a batch's objects hold no reference cycles: reference
    # counting frees them. The cyclic collector, triggered by allocation counts, traversed each
    # batch's millions of live objects again and again (measured: preparing 10 % slower even at
    # the importer's `_few_collections` threshold). So it is off here, with one collection
    # between batches.
    gc.disable()
    gc.freeze()  # what the imports made is out of every collection's sight


def worker_started() -> None:
    """Nothing: submitted once per worker process to have the pool start them all now."""


def prepare_in_worker(task: BatchPreparer, chunk: Chunk) -> PreparedBatch:
    # Between batches little is alive: whatever cycles the last one left go, cheaply, and what
    # stays (modules imported since) is frozen out of the next collections' sight.
    gc.collect()
    gc.freeze()
    return task.prepare(chunk, _published_encoder)
