"""The warehouse port: load versioned entities and raw events, read the contract views."""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from data_pipeline.domain.model import WarehouseEntity
from data_pipeline.domain.records import record


@record
class RawEvent:
    """A received event as archived for replay. Credentials are already redacted from `body`,
    the JSON as received, in UTF-8: bytes, not text, so that a bulk import's bodies go to the
    warehouse as they were read (decoding each to text and the encoder encoding it back was
    ~12 % of preparing an event, docs/benchmarks.md)."""

    merchant_id: int
    body_sha256: str
    event: str
    event_created_at: datetime | None
    received_at: datetime
    source: str
    body: bytes


@dataclass(slots=True)
class LoadBatch:
    raw_events: list[RawEvent] = field(default_factory=list)
    entities: list[WarehouseEntity] = field(default_factory=list)

    @classmethod
    def combine(cls, batches: Iterable[LoadBatch]) -> LoadBatch:
        combined = cls()
        for batch in batches:
            combined.raw_events.extend(batch.raw_events)
            combined.entities.extend(batch.entities)
        return combined

    @property
    def size(self) -> int:
        return len(self.raw_events) + len(self.entities)


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


# The objects a write touched, by current-state table: (merchant_id, object id) pairs.
Touched = dict[str, set[tuple[int, int]]]


class BatchEncoding(Protocol):
    def encode(self, batch: LoadBatch) -> Any: ...


class Warehouse(abc.ABC):
    """Blocking interface: callers on an event loop run it in a worker thread."""

    @abc.abstractmethod
    def migrate(self) -> list[str]:
        """Apply pending migrations; return the names of those applied."""

    @abc.abstractmethod
    def write(self, batch: LoadBatch) -> None:
        """Insert and wait for confirmation. Raises TransientError on any failure."""

    @abc.abstractmethod
    def batch_encoder(self) -> BatchEncoding:
        """What prepares a batch for `write_encoded`; picklable, so a bulk import can encode
        in worker processes."""

    @abc.abstractmethod
    def write_encoded(self, encoded: Any, *, refresh: bool = True) -> Touched:
        """`write` of a batch `batch_encoder()` encoded; returns the objects it touched. With
        `refresh=False` their current state is left to a later `refresh` (the read contract does
        not show the batch until then): a bulk import brings several batches up to date at
        once, which costs less per object."""

    @abc.abstractmethod
    def refresh(self, touched: Touched) -> None:
        """Bring the current state of these objects up to date with every stored version."""

    @abc.abstractmethod
    def query(
        self,
        sql: str,
        parameters: dict[str, Any] | None = None,
        *,
        read_after_write: bool = False,
    ) -> QueryResult:
        """Run a read-only query (`read_after_write`: must see every confirmed insert)."""

    @abc.abstractmethod
    def ping(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...
