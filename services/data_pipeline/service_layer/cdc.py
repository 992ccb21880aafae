"""Change data capture, the capture side: the slot's changes (and snapshots) become batches on
the `cdc-events` topic; the slot advances only after QStash accepted every batch.

Versions: a change's version is (commit LSN, position in its transaction); snapshot rows have
(0, 0), so any streamed change of the same key wins over them. A crash anywhere before the
advance makes the next drain read (and publish) the same changes again: batches are cut at the
same places and identified by their content hash (QStash drops a repeat within its
deduplication window), and loading a batch twice stores nothing new.

Snapshots travel as `COPY` text, cut at row ends, for ClickHouse to parse and convert (rows never
become Python objects: 12x the row-by-row rate); tables with array columns, whose `{…}` literal
ClickHouse cannot read, row by row like changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg

from data_pipeline.adapters.postgres_cdc import PostgresSource, TableShape, split_table
from data_pipeline.adapters.state import StateStore
from data_pipeline.domain import pgoutput
from data_pipeline.domain.cdc import (
    SourceType,
    clickhouse_type,
    table_name,
    text_snapshot_supported,
)
from data_pipeline.errors import InvalidPayload, PermanentError, TransientError

if TYPE_CHECKING:  # the drain runs where ClickHouse's client is not imported
    from data_pipeline.adapters.clickhouse_cdc import CdcApplied, CdcSink

BATCH_ROWS = 5000  # per message; bytes bound it first for wide rows
BATCH_BYTES = 600_000  # well under QStash's 1 MB message limit
RANGE_ROWS = 100_000  # rows per snapshot range: one delivery reads and loads it
LOAD_CHUNK_BYTES = 8 * 2**20  # COPY text per ClickHouse insert while loading a range
DRAIN_CHANGES = 20_000
LEASE_SECONDS = 120.0  # a crashed drain holds the slot no longer than this

Publish = Callable[[bytes, str], Awaitable[Any]]


@dataclass
class Snapshot:
    ranges: int = 0  # key ranges published (each read and loaded by the service)
    rows: int = 0  # rows published row by row (tables with arrays)

    def __str__(self) -> str:
        return (
            f"{self.ranges:,} key ranges (each read by the service that receives it) and "
            f"{self.rows:,} rows published"
        )


@dataclass
class DrainReport:
    changes: int = 0
    transactions: int = 0
    batches: int = 0
    advanced_to: int | None = None


@dataclass
class _TableBatch:
    source: str
    table: str
    columns: list[list[Any]]  # [name, clickhouse type, is key]
    rows: list[str] = field(default_factory=list)  # each row's JSON, serialised once


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _Batcher:
    """Rows of several tables into messages of bounded size, published in order."""

    def __init__(self, slot: str, publish: Callable[[bytes, str], None]) -> None:
        self._slot = slot
        self._publish = publish
        self._tables: dict[str, _TableBatch] = {}
        self._rows = 0
        self._bytes = 0
        self.batches = 0

    def add(self, shape: _TableBatch, row: list[Any]) -> None:
        batch = self._tables.get(shape.source)
        if batch is None or batch.columns != shape.columns:
            if batch is not None:  # the table's shape changed mid-batch: one shape per message
                self.flush()
            batch = self._tables[shape.source] = _TableBatch(
                shape.source, shape.table, shape.columns
            )
        encoded = _json(row)
        batch.rows.append(encoded)
        self._rows += 1
        self._bytes += len(encoded)
        if self._rows >= BATCH_ROWS or self._bytes >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._tables:
            return
        # The rows are JSON already (their size bounds the message): joined, not re-encoded.
        tables = ",".join(
            f'{{"source":{_json(b.source)},"table":{_json(b.table)},'
            f'"columns":{_json(b.columns)},"rows":[{",".join(b.rows)}]}}'
            for b in self._tables.values()
        )
        body = f'{{"slot":{_json(self._slot)},"tables":[{tables}]}}'.encode()
        self._publish(body, "cdc-" + hashlib.sha256(body).hexdigest())
        self.batches += 1
        self._tables, self._rows, self._bytes = {}, 0, 0


class CdcCapture:
    def __init__(
        self,
        source: PostgresSource,
        publish: Publish,
        state: StateStore,
        *,
        owner: str,
        on_status: Callable[[int | None], None] | None = None,
    ) -> None:
        self.source = source
        self._publish = publish
        self._state = state
        self._owner = owner
        self._on_status = on_status
        self._types: dict[int, SourceType] = {}

    async def snapshot(self, tables: list[tuple[str, str]], batch: int = BATCH_ROWS) -> Snapshot:
        """Every existing row of `tables`, at version (0, 0). A table whose columns ClickHouse
        converts from PostgreSQL's text (all but arrays) is published as key ranges, each read
        by the service that receives it (`COPY`, straight into ClickHouse); the others row by
        row, as changes are."""
        loop = asyncio.get_running_loop()

        def run() -> Snapshot:
            publish = self._blocking(loop)
            batcher = _Batcher(self.source.slot, publish)
            done = Snapshot()
            for schema, table in tables:
                with self.source.connect() as db:
                    shape = self.source.shape(db, schema, table)
                spec = _spec(shape)
                if all(text_snapshot_supported(kind) for _, kind, _ in spec.columns):
                    for after, through in self.source.key_ranges(shape, RANGE_ROWS):
                        range_ = {"source": spec.source, "after": after, "through": through}
                        body = _json({"slot": self.source.slot, "snapshot_range": range_})
                        publish(body.encode(), "cdc-" + hashlib.sha256(body.encode()).hexdigest())
                        done.ranges += 1
                    continue
                for rows in self.source.snapshot(shape, batch):
                    for values in rows:
                        batcher.add(spec, [0, 0, "u", None, list(values), []])
                        done.rows += 1
                batcher.flush()
            return done

        return await asyncio.to_thread(run)

    async def drain(self, max_changes: int = DRAIN_CHANGES) -> DrainReport:
        """Publish the slot's pending changes (at least `max_changes` if there are that many,
        whole transactions), then advance the slot past them. One drain at a time per slot."""
        lease = f"cdc-drain:{self.source.slot}"
        if not await self._state.acquire_lock(lease, self._owner, LEASE_SECONDS):
            return DrainReport()
        try:
            loop = asyncio.get_running_loop()
            report = await asyncio.to_thread(self._drain, max_changes, self._blocking(loop))
            if report.advanced_to is not None:
                await asyncio.to_thread(self.source.advance, report.advanced_to)
            if self._on_status is not None:
                self._on_status(await asyncio.to_thread(self._retained))
            return report
        finally:
            await self._state.release_lock(lease, self._owner)

    def _retained(self) -> int | None:
        return self.source.status().retained_bytes

    def _blocking(self, loop: asyncio.AbstractEventLoop) -> Callable[[bytes, str], None]:
        def publish(body: bytes, dedup_id: str) -> None:
            asyncio.run_coroutine_threadsafe(self._publish(body, dedup_id), loop).result(60)

        return publish

    def _drain(self, max_changes: int, publish: Callable[[bytes, str], None]) -> DrainReport:
        report = DrainReport()
        batcher = _Batcher(self.source.slot, publish)
        relations: dict[int, tuple[_TableBatch, tuple[pgoutput.Column, ...]]] = {}
        commit_lsn, commit_time, seq = 0, None, 0
        with self.source.connect() as catalog:
            for _, data in self.source.peek(max_changes):
                message = pgoutput.decode(data)
                if isinstance(message, pgoutput.Begin):
                    commit_lsn, commit_time, seq = message.final_lsn, message.commit_time, 0
                elif isinstance(message, pgoutput.Commit):
                    report.transactions += 1
                    report.advanced_to = message.end_lsn
                elif isinstance(message, pgoutput.Relation):
                    relations[message.relation_id] = (
                        self._spec(catalog, message),
                        message.columns,
                    )
                elif isinstance(message, pgoutput.Ignored):
                    continue
                elif isinstance(message, pgoutput.Truncate):
                    at = commit_time.isoformat() if commit_time else None
                    for relation_id in message.relation_ids:
                        seq += 1
                        batcher.add(relations[relation_id][0], [commit_lsn, seq, "t", at, [], []])
                        report.changes += 1
                else:
                    for op, values, unchanged in _changes(message, relations):
                        seq += 1
                        spec = relations[message.relation_id][0]
                        at = commit_time.isoformat() if commit_time else None
                        batcher.add(spec, [commit_lsn, seq, op, at, values, unchanged])
                        report.changes += 1
        batcher.flush()
        report.batches = batcher.batches
        return report

    def _spec(self, catalog: psycopg.Connection[Any], relation: pgoutput.Relation) -> _TableBatch:
        source = f"{relation.schema}.{relation.name}"
        if not any(column.is_key for column in relation.columns):
            raise InvalidPayload(f"{source} has no replica identity key: CDC cannot key it")
        columns = []
        for column in relation.columns:
            kind = self._type(catalog, column)
            where = f"{source}.{column.name}"
            columns.append([column.name, clickhouse_type(kind, where=where), column.is_key])
        return _TableBatch(source, table_name(relation.schema, relation.name), columns)

    def _type(self, catalog: psycopg.Connection[Any], column: pgoutput.Column) -> SourceType:
        cached = self._types.get(column.type_oid)
        if cached is None:
            row = catalog.execute(
                "SELECT t.typtype = 'e', t.typelem, coalesce(e.typtype = 'e', false),"
                " format_type(t.oid, NULL) FROM pg_type t"
                " LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typelem <> 0 WHERE t.oid = %s",
                (column.type_oid,),
            ).fetchone()
            if row is None:
                raise TransientError(f"type {column.type_oid} vanished from the catalog")
            cached = SourceType(
                column.type_oid, -1, bool(row[0]), row[1] or None, bool(row[2]), row[3]
            )
            self._types[column.type_oid] = cached
        return SourceType(
            cached.oid,
            column.type_modifier,
            cached.is_enum,
            cached.element_oid,
            cached.element_is_enum,
            cached.name,
        )


def _spec(shape: TableShape) -> _TableBatch:
    where = f"{shape.schema}.{shape.name}"
    return _TableBatch(
        where,
        table_name(shape.schema, shape.name),
        [
            [c, clickhouse_type(t, where=f"{where}.{c}"), c in shape.key]
            for c, t in zip(shape.columns, shape.types, strict=True)
        ],
    )


def load_snapshot_range(source: PostgresSource, sink: CdcSink, message: dict[str, Any]) -> int:
    """One key range of a table's initial snapshot, read from PostgreSQL and loaded in chunks of
    `LOAD_CHUNK_BYTES` (memory independent of the range): the rows loaded. Only a configured
    table is read; its shape comes from the catalog, never from the message."""
    range_ = message.get("snapshot_range")
    if not isinstance(range_, dict) or not isinstance(range_.get("source"), str):
        raise InvalidPayload("cdc snapshot range needs its source table")
    qualified = range_["source"]
    if split_table(qualified) not in source.tables:
        raise InvalidPayload(f"{qualified[:100]} is not a captured table (CDC_TABLES)")
    schema, table = split_table(qualified)
    with source.connect() as db:
        shape = source.shape(db, schema, table)
    after, through = (_bound(range_.get(end), shape, end) for end in ("after", "through"))
    spec = _spec(shape)
    columns = [(name, kind, bool(key)) for name, kind, key in spec.columns]
    loaded = 0
    try:
        for text, rows in source.snapshot_text(shape, LOAD_CHUNK_BYTES, after, through):
            sink.load_text(spec.table, columns, text)
            loaded += rows
    except psycopg.OperationalError as error:
        raise TransientError(f"PostgreSQL: {str(error).strip()[:200]}") from None
    except psycopg.Error as error:  # a bound that is not a value of its key's type, …
        raise InvalidPayload(f"{qualified}: {str(error).strip()[:200]}") from None
    return loaded


def _bound(value: Any, shape: TableShape, end: str) -> list[str] | None:
    if value is None:
        return None
    if (
        not shape.primary
        or not isinstance(value, list)
        or len(value) != len(shape.key)
        or not all(isinstance(v, str) for v in value)
    ):
        raise InvalidPayload(f"cdc snapshot range: {end} must be the table's key values as text")
    return value


def _changes(
    message: Any, relations: dict[int, tuple[_TableBatch, tuple[pgoutput.Column, ...]]]
) -> list[tuple[str, list[Any], list[str]]]:
    """One pgoutput change as (op, values, unchanged column names) rows: upserts ("u") and
    deletes ("d"); a key change is a delete of the old key, then an upsert."""
    _, columns = relations[message.relation_id]
    names = [c.name for c in columns]
    keys = [i for i, c in enumerate(columns) if c.is_key]

    def plain(values: tuple[object, ...]) -> tuple[list[Any], list[str]]:
        unchanged = [names[i] for i, v in enumerate(values) if v is pgoutput.UNCHANGED]
        return [None if v is pgoutput.UNCHANGED else v for v in values], unchanged

    def tombstone(old: tuple[object, ...]) -> tuple[str, list[Any], list[str]]:
        values = [old[i] if i in keys else None for i in range(len(names))]
        return "d", values, [n for i, n in enumerate(names) if i not in keys]

    if isinstance(message, pgoutput.Insert):
        return [("u", *plain(message.new))]
    if isinstance(message, pgoutput.Delete):
        return [tombstone(message.old)]
    rows = []
    if message.old is not None and [message.old[i] for i in keys] != [message.new[i] for i in keys]:
        rows.append(tombstone(message.old))  # the key changed: the old row goes
    rows.append(("u", *plain(message.new)))
    return rows


def source_from(settings: Any) -> PostgresSource:
    """The configured source (settings: PipelineSettings). InvalidPayload when CDC is off."""
    if settings.cdc_database_url is None:
        raise InvalidPayload("change data capture is off (CDC_DATABASE_URL is not set)")
    return PostgresSource(
        settings.cdc_database_url.get_secret_value(),
        settings.cdc_table_list,
        settings.cdc_publication,
        settings.cdc_slot,
    )


def apply_delivery(settings: Any, sink: CdcSink, message: dict[str, Any]) -> CdcApplied:
    """A `cdc-events` delivery: a batch of changes (or snapshot rows) to load, or a snapshot's
    key range to read from PostgreSQL and load."""
    from data_pipeline.adapters.clickhouse_cdc import CdcApplied

    if "snapshot_range" in message:
        rows = load_snapshot_range(source_from(settings), sink, message)
        table = table_name(*split_table(message["snapshot_range"]["source"]))
        return CdcApplied(counts={(table, "u"): rows})
    return sink.apply(message)


def capture_from(
    settings: Any, queue: Any, state: StateStore, owner: str, metrics: Any = None
) -> CdcCapture:
    """The capture a deployed function runs on each scheduled drain (settings: PipelineSettings,
    queue: the QStash adapter, metrics: PipelineMetrics, whose retained-WAL gauge each drain
    sets). Raises InvalidPayload when CDC is off."""
    source = source_from(settings)

    async def publish(body: bytes, dedup_id: str) -> None:
        await queue.publish_cdc_batch(body, dedup_id=dedup_id)

    def retained(size: int | None) -> None:
        if metrics is not None and size is not None:
            metrics.cdc_slot_retained_bytes.set(size)

    return CdcCapture(source, publish, state, owner=owner, on_status=retained)


async def keep_draining(
    capture: CdcCapture,
    *,
    interval: float = 0.5,
    once: bool = False,
    on_report: Callable[[DrainReport], None] | None = None,
    on_error: Callable[[TransientError], None] | None = None,
) -> None:
    """Drain again at once while changes keep coming, every `interval` seconds when quiet,
    backing off (to 30 s) while PostgreSQL or QStash is unreachable. A PermanentError (the
    source is misconfigured) ends it."""
    pause = interval
    while True:
        changes = 0
        try:
            report = await capture.drain()
            changes, pause = report.changes, interval
            if changes and on_report is not None:
                on_report(report)
        except TransientError as error:
            if on_error is not None:
                on_error(error)
            pause = min(max(pause * 2, 1.0), 30.0)
        if once:
            return
        if not changes:
            await asyncio.sleep(pause)


async def run_capture(capture: CdcCapture) -> None:
    """Set up (retrying while PostgreSQL is unreachable), snapshot what needs it, then keep
    draining; a misconfigured source is logged and ends the capture, not the process."""
    import structlog

    log = structlog.get_logger("cdc")
    pause = 1.0
    try:
        while True:
            try:
                done, to_snapshot = await asyncio.to_thread(capture.source.setup)
                break
            except TransientError as error:
                log.warning("cdc_setup_retry", error=str(error))
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30.0)
        for line in done:
            log.info("cdc_setup", done=line)
        if to_snapshot:
            published = await capture.snapshot(to_snapshot)
            log.info(
                "cdc_snapshot",
                ranges=published.ranges,
                rows=published.rows,
                tables=len(to_snapshot),
            )
        await keep_draining(
            capture,
            on_error=lambda error: log.warning("cdc_drain_retry", error=str(error)),
        )
    except PermanentError as error:
        log.error("cdc_stopped", error=str(error))
