"""`salla-pipeline cdc setup|snapshot|run|status`: change data capture from the app's PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from data_pipeline.entrypoints.cli.console import console, fail, run
from shared.dev_credentials import DEV_QSTASH_TOKEN

app = typer.Typer(help="Change data capture from PostgreSQL into ClickHouse.", no_args_is_help=True)

DatabaseUrl = Annotated[
    str,
    typer.Option(envvar="CDC_DATABASE_URL", help="libpq URL of the source.", show_default=False),
]
Tables = Annotated[
    str, typer.Option(envvar="CDC_TABLES", help="Comma-separated schema.table list.")
]
Publication = Annotated[str, typer.Option(envvar="CDC_PUBLICATION")]
Slot = Annotated[str, typer.Option(envvar="CDC_SLOT")]
QStashUrl = Annotated[str, typer.Option(envvar="QSTASH_URL", help="QStash API base URL.")]
QStashToken = Annotated[
    str, typer.Option(envvar="QSTASH_TOKEN", help="QStash token.", show_default=False)
]
TopicPrefix = Annotated[str, typer.Option(envvar="QSTASH_TOPIC_PREFIX")]
DataDir = Annotated[
    Path, typer.Option("--data-dir", help="Embedded state (the drain lease) without REDIS_URL.")
]


def _source(url: str, tables: str, publication: str, slot: str) -> Any:
    from data_pipeline.adapters.postgres_cdc import PostgresSource

    listed = [t.strip() for t in tables.split(",") if t.strip()]
    if not listed:
        fail("CDC_TABLES is empty: list the tables to capture (schema.table, comma-separated)")
    return PostgresSource(url, listed, publication, slot)


@contextlib.asynccontextmanager
async def _capturing(
    source: Any, qstash_url: str, token: str, prefix: str, data_dir: Path
) -> AsyncIterator[Any]:
    """A capture publishing to QStash, its lease in Redis (REDIS_URL) or the data dir; closed
    on the way out."""
    from data_pipeline.adapters.qstash_queue import QStashQueue
    from data_pipeline.adapters.redis_state import RedisStateStore
    from data_pipeline.adapters.sqlite_state import SqliteStateStore
    from data_pipeline.service_layer.cdc import CdcCapture

    queue = QStashQueue(
        token=token, base_url=qstash_url, retries=3, retry_delay=None, topic_prefix=prefix
    )
    redis_url = os.environ.get("REDIS_URL")
    state = (
        RedisStateStore(redis_url) if redis_url else SqliteStateStore(data_dir / "state.sqlite3")
    )

    async def publish(body: bytes, dedup_id: str) -> None:
        await queue.publish_cdc_batch(body, dedup_id=dedup_id)

    # Stable across restarts: a `cdc run` killed mid-drain takes its lease back at once.
    owner = f"cdc-run:{socket.gethostname()}"
    try:
        yield CdcCapture(source, publish, state, owner=owner)
    finally:
        await queue.close()
        await state.close()


@app.command()
def setup(
    database_url: DatabaseUrl,
    tables: Tables = "",
    publication: Publication = "analytics_cdc",
    slot: Slot = "analytics_cdc",
    qstash_url: QStashUrl = "http://127.0.0.1:8080",
    token: QStashToken = DEV_QSTASH_TOKEN,
    topic_prefix: TopicPrefix = "",
    data_dir: DataDir = Path(".data"),
) -> None:
    """Create the publication and the replication slot (idempotent), then load the rows that
    exist (the slot first: every later change is streamed and wins over the snapshot)."""
    from data_pipeline.errors import PipelineError
    from data_pipeline.service_layer.cdc import Snapshot

    source = _source(database_url, tables, publication, slot)

    async def go() -> tuple[list[str], Snapshot]:
        done, to_snapshot = await asyncio.to_thread(source.setup)
        async with _capturing(source, qstash_url, token, topic_prefix, data_dir) as capture:
            published = await capture.snapshot(to_snapshot) if to_snapshot else Snapshot()
        return done, published

    try:
        done, published = run(go())
    except PipelineError as error:
        fail(str(error))
    for line in done or ["publication and slot already in place"]:
        console.print(line)
    console.print(f"snapshot: {published}")


@app.command()
def snapshot(
    database_url: DatabaseUrl,
    tables: Tables = "",
    publication: Publication = "analytics_cdc",
    slot: Slot = "analytics_cdc",
    qstash_url: QStashUrl = "http://127.0.0.1:8080",
    token: QStashToken = DEV_QSTASH_TOKEN,
    topic_prefix: TopicPrefix = "",
    data_dir: DataDir = Path(".data"),
) -> None:
    """Read the tables again (after an interrupted setup, say): idempotent, and every streamed
    change still wins over a snapshot row."""
    from data_pipeline.errors import PipelineError
    from data_pipeline.service_layer.cdc import Snapshot

    source = _source(database_url, tables, publication, slot)

    async def go() -> Snapshot:
        async with _capturing(source, qstash_url, token, topic_prefix, data_dir) as capture:
            return await capture.snapshot(list(source.tables))

    try:
        published = run(go())
    except PipelineError as error:
        fail(str(error))
    console.print(f"snapshot: {published}")


@app.command("run")
def run_(
    database_url: DatabaseUrl,
    tables: Tables = "",
    publication: Publication = "analytics_cdc",
    slot: Slot = "analytics_cdc",
    qstash_url: QStashUrl = "http://127.0.0.1:8080",
    token: QStashToken = DEV_QSTASH_TOKEN,
    topic_prefix: TopicPrefix = "",
    data_dir: DataDir = Path(".data"),
    interval: Annotated[float, typer.Option(help="Seconds between empty drains.")] = 0.5,
    once: Annotated[bool, typer.Option(help="One drain, then exit.")] = False,
) -> None:
    """Capture continuously (a container, or `salla-pipeline dev`): drain the slot, publish,
    advance; again at once while changes keep coming."""
    source = _source(database_url, tables, publication, slot)
    run(_drain_continuously(source, qstash_url, token, topic_prefix, data_dir, interval, once))


async def _drain_continuously(
    source: Any,
    qstash_url: str,
    token: str,
    prefix: str,
    data_dir: Path,
    interval: float,
    once: bool = False,
) -> None:
    from data_pipeline.errors import PermanentError
    from data_pipeline.service_layer.cdc import keep_draining

    try:
        async with _capturing(source, qstash_url, token, prefix, data_dir) as capture:
            await keep_draining(
                capture,
                interval=interval,
                once=once,
                on_report=lambda r: console.print(
                    f"cdc: {r.changes} changes in {r.transactions} transactions,"
                    f" {r.batches} batches"
                ),
                on_error=lambda e: console.print(f"[yellow]cdc: {e}; retrying[/]"),
            )
    except PermanentError as error:
        fail(str(error))


@app.command()
def status(
    database_url: DatabaseUrl,
    tables: Tables = "",
    publication: Publication = "analytics_cdc",
    slot: Slot = "analytics_cdc",
    clickhouse_url: Annotated[
        str | None, typer.Option(envvar="CLICKHOUSE_URL", show_default=False)
    ] = None,
    database: Annotated[str, typer.Option(envvar="CDC_CLICKHOUSE_DATABASE")] = "oltp",
) -> None:
    """The slot (retained WAL, pending changes) and, per table, rows snapshotted, changes
    applied, the last applied commit and the lag (with CLICKHOUSE_URL)."""
    from data_pipeline.domain.cdc import table_name
    from data_pipeline.domain.pgoutput import lsn_text
    from data_pipeline.errors import PipelineError

    source = _source(database_url, tables, publication, slot)
    try:
        slot_status = source.status()
    except PipelineError as error:
        fail(str(error))
    if not slot_status.exists:
        fail(f"no replication slot {slot}: run `salla-pipeline cdc setup`")
    console.print(
        f"slot {slot}: confirmed {lsn_text(slot_status.confirmed_lsn or 0)}, "
        f"WAL retained {slot_status.retained_bytes:,} bytes, "
        f"pending {slot_status.pending_bytes:,} bytes"
    )
    if clickhouse_url is None:
        return
    from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse

    warehouse = ClickHouseWarehouse(clickhouse_url, database)
    table = Table(title="Captured tables")
    for column in ("table", "snapshotted", "changes", "last commit", "lag"):
        table.add_column(column)
    try:
        for schema, name in source.tables:
            target = table_name(schema, name)
            [(snapshotted, changes, last, lag)] = warehouse.query(
                f"SELECT countIf(_lsn = 0), countIf(_lsn > 0), max(_commit_time), "  # noqa: S608
                f"dateDiff('second', max(_commit_time), now64(6)) "
                f"FROM {database}.`{target}__versions`"
            ).rows
            table.add_row(
                f"{schema}.{name}", f"{snapshotted:,}", f"{changes:,}", str(last), f"{lag}s"
            )
    except PipelineError as error:
        fail(str(error))
    finally:
        warehouse.close()
    console.print(table)
