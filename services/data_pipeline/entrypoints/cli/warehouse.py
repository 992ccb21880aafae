"""`salla-pipeline migrate`: apply the warehouse migrations (idempotent)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from data_pipeline.entrypoints.cli.console import console, fail
from data_pipeline.errors import TransientError


def migrate(
    dsn: Annotated[
        str | None,
        typer.Option(envvar="CLICKHOUSE_URL", help="clickhouse-connect DSN.", show_default=False),
    ] = None,
    database: Annotated[str, typer.Option(envvar="CLICKHOUSE_DATABASE")] = "analytics",
    data_dir: Annotated[Path, typer.Option("--data-dir", help="For the local chDB default.")] = (
        Path(".data")
    ),
) -> None:
    """Create or upgrade the warehouse schema; safe to run any number of times."""
    from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse, WarehouseInUse

    target = dsn or f"chdb://{(data_dir / 'clickhouse').resolve()}"
    warehouse = ClickHouseWarehouse(target, database)
    try:
        applied = warehouse.migrate()
        version = warehouse.schema_version()
    except WarehouseInUse as error:
        fail(f"{error}: stop the running stack first")
    except TransientError as error:
        fail(str(error))
    finally:
        warehouse.close()
    for name in applied:
        console.print(f"applied {name}")
    console.print(f"schema at version {version}" + ("" if applied else " (already current)"))


def replay(
    dsn: Annotated[
        str | None,
        typer.Option(envvar="CLICKHOUSE_URL", help="clickhouse-connect DSN.", show_default=False),
    ] = None,
    database: Annotated[str, typer.Option(envvar="CLICKHOUSE_DATABASE")] = "analytics",
    merchant: Annotated[int | None, typer.Option(help="Only this merchant's events.")] = None,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="For the local chDB default.")] = (
        Path(".data")
    ),
) -> None:
    """Rebuild the entity tables from the raw event archive (idempotent)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse, WarehouseInUse
    from data_pipeline.service_layer.replay import replay_archive

    target = dsn or f"chdb://{(data_dir / 'clickhouse').resolve()}"
    warehouse = ClickHouseWarehouse(target, database)
    try:
        [(total,)] = warehouse.query(
            f"SELECT count() FROM {database}.raw_events FINAL"  # noqa: S608
            + ("" if merchant is None else f" WHERE merchant_id = {int(merchant)}")
        ).rows
        with Progress(
            TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), console=console
        ) as bar:
            task = bar.add_task("replay", total=total)
            report = replay_archive(
                warehouse,
                database,
                merchant_id=merchant,
                progress=lambda n: bar.advance(task, n),
            )
    except WarehouseInUse as error:
        fail(f"{error}: stop the running stack first")
    except TransientError as error:
        fail(str(error))
    finally:
        warehouse.close()
    console.print(
        f"replayed {report.events} events into {report.rows} rows "
        f"({report.unmodeled} unmodeled, {len(report.invalid)} still invalid)"
    )
    if report.invalid:
        console.print("still invalid: " + ", ".join(report.invalid[:20]))
        raise typer.Exit(1)
