"""`salla-pipeline rebuild --from-archive URL`: load a warehouse from the raw archive.

Into a stopped data dir's chDB (or the warehouse CLICKHOUSE_URL names), empty or not, through
the worker's transform and versions (service_layer/rebuild.py). Interrupted, the same command
resumes where it stopped; `--restart` forgets that. Ends with a summary and exit status 1 when
any event or object could not be loaded.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from data_pipeline.entrypoints.cli.console import console, fail
from data_pipeline.errors import TransientError

MAX_LISTED_FAILURES = 20


def rebuild(
    from_archive: Annotated[
        str,
        typer.Option(
            "--from-archive",
            help="The raw archive: s3://bucket/prefix (read access needed) or file:///path.",
        ),
    ],
    since: Annotated[
        str | None, typer.Option(help="Only events of this day (YYYY-MM-DD) and later.")
    ] = None,
    merchant: Annotated[int | None, typer.Option(min=1, help="Only this merchant.")] = None,
    dsn: Annotated[
        str | None,
        typer.Option(envvar="CLICKHOUSE_URL", help="Warehouse DSN (default: the data dir's chDB)."),
    ] = None,
    database: Annotated[str, typer.Option(envvar="CLICKHOUSE_DATABASE")] = "analytics",
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Local data dir (chDB default, resume state).")
    ] = Path(".data"),
    processes: Annotated[
        int, typer.Option(min=1, help="Worker processes transforming (default: one per core).")
    ] = os.cpu_count() or 1,
    restart: Annotated[
        bool, typer.Option("--restart", help="Forget an interrupted run's progress.")
    ] = False,
) -> None:
    """Rebuild the warehouse from the raw archive (every accepted event), resumably."""
    from data_pipeline.adapters.archive import open_archive
    from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse, WarehouseInUse
    from data_pipeline.adapters.sqlite_state import SqliteStateStore
    from data_pipeline.service_layer.archive import key_parts
    from data_pipeline.service_layer.rebuild import ArchiveRebuild, plan, run_id

    try:
        first_day = date.fromisoformat(since) if since else None
    except ValueError:
        fail(f"--since {since!r} is not a date (YYYY-MM-DD)")
    try:
        archive = open_archive(from_archive)
    except ValueError as error:
        fail(str(error))
    data_dir = data_dir.resolve()
    run_dir = data_dir / "rebuild" / run_id(archive.url, first_day, merchant)
    if restart and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    warehouse = ClickHouseWarehouse(dsn or f"chdb://{data_dir / 'clickhouse'}", database)
    state = SqliteStateStore(run_dir / "state.sqlite3")
    job = ArchiveRebuild(archive, warehouse, state, run_dir / "objects.done", processes=processes)

    async def run(keys: list[str], progress: Progress) -> Any:
        task = progress.add_task("rebuilding", total=len(keys), events=0)

        def advance(objects: int, events: int) -> None:
            progress.update(task, completed=objects, events=events)

        try:
            return await job.run(keys, progress=advance)
        finally:
            await state.close()

    try:
        keys = plan(archive, since=first_day, merchant=merchant)
        warehouse.migrate()  # an empty target gets its schema; a current one is untouched
        with _progress() as progress:
            report = asyncio.run(run(keys, progress))
        merchants = sorted({parts[0] for key in keys if (parts := key_parts(key))})
        held = _warehouse_events(warehouse, database, merchants)
    except WarehouseInUse as error:
        fail(f"{error}: stop the running stack first")
    except TransientError as error:
        fail(f"{error} (interrupted runs resume: run the same command again)")
    finally:
        warehouse.close()
    console.print(
        f"{len(keys):,} objects ({report.resumed:,} done by an earlier run), "
        f"{report.events:,} events read: {report.loaded:,} loaded, "
        f"{report.ignored:,} not modeled, {report.duplicates:,} duplicates, "
        f"{len(report.failures):,} failed"
    )
    console.print(f"warehouse now holds {held:,} distinct raw events of these merchants")
    for failure in report.failures[:MAX_LISTED_FAILURES]:
        where = failure.key + (f" line {failure.line}" if failure.line else "")
        console.print(f"  {where}: {failure.reason}", markup=False)
    if len(report.failures) > MAX_LISTED_FAILURES:
        console.print(f"  … and {len(report.failures) - MAX_LISTED_FAILURES} more")
    if report.failures:
        raise typer.Exit(1)


def _warehouse_events(warehouse: Any, database: str, merchants: list[int]) -> int:
    if not merchants:
        return 0
    result = warehouse.query(
        f"SELECT uniqExact(body_sha256) FROM {database}.raw_events "  # noqa: S608
        "WHERE merchant_id IN {merchants:Array(UInt64)}",
        {"merchants": merchants},
    )
    return int(result.rows[0][0])


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("objects · {task.fields[events]:,} events"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
