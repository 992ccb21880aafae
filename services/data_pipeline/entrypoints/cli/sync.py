"""`salla-pipeline sync start|status|resume`: historical sync through the service's HTTP API."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from data_pipeline.entrypoints.cli.console import console, fail
from data_pipeline.entrypoints.cli.service import (
    DEFAULT_URL,
    DataDirOption,
    ServiceClient,
    UrlOption,
)

app = typer.Typer(help="Historical sync (backfill from the Salla Admin API).", no_args_is_help=True)

WatchOption = Annotated[bool, typer.Option("--watch", help="Follow progress until it ends.")]


def _watch(client: ServiceClient, job_id: str) -> None:
    columns = (
        TextColumn("[bold]{task.fields[status]:<9}[/]"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("sync", total=100, status="QUEUED", detail="")
        while True:
            _, job = client.call("GET", "/api/jobs/sync/status", params={"jobId": job_id})
            counts = job["counts"]
            detail = (
                f"{job['position']} · {counts['orders']} orders, {counts['products']} products, "
                f"{counts['customers']} customers"
            )
            if job.get("note"):
                detail += f" · {job['note'][:60]}"
            progress.update(task, completed=job["progress"], status=job["status"], detail=detail)
            if job["status"] in ("COMPLETED", "FAILED"):
                break
            time.sleep(1)
    _print_job(job)
    if job["status"] == "FAILED":
        raise typer.Exit(1)


def _print_job(job: dict[str, Any]) -> None:
    table = Table.grid(padding=(0, 2))
    for key in (
        "jobId",
        "merchantId",
        "status",
        "progress",
        "window",
        "counts",
        "skipped",
        "requests",
        "startedAt",
        "updatedAt",
        "error",
        "note",
    ):
        value = job.get(key)
        if value not in (None, {}, ""):
            table.add_row(f"[bold]{key}[/]", str(value))
    console.print(table)


@app.command()
def start(
    merchant: Annotated[str, typer.Option(help="Salla merchant (store) id.")],
    depth: Annotated[str, typer.Option(help="12m or 24m: calendar months back from today.")],
    watch: WatchOption = False,
    url: UrlOption = DEFAULT_URL,
    data_dir: DataDirOption = Path(".data"),
) -> None:
    """Start a backfill (or attach to the merchant's running one)."""
    if depth not in ("12m", "24m"):
        fail("--depth must be 12m or 24m")
    client = ServiceClient.connect(url, data_dir)
    code, body = client.call(
        "POST", "/api/jobs/sync/initiate", json={"merchantId": merchant, "depth": depth}
    )
    verb = "started" if code == 202 else "already running"
    console.print(f"job [bold]{body['jobId']}[/] {verb} ({body['status']})")
    if watch:
        _watch(client, body["jobId"])


@app.command()
def status(
    merchant: Annotated[str | None, typer.Option(help="Latest job of this merchant.")] = None,
    job: Annotated[str | None, typer.Option(help="One job by id.")] = None,
    watch: WatchOption = False,
    url: UrlOption = DEFAULT_URL,
    data_dir: DataDirOption = Path(".data"),
) -> None:
    """Show a job's status (by merchant or by job id)."""
    if (merchant is None) == (job is None):
        fail("give exactly one of --merchant or --job")
    client = ServiceClient.connect(url, data_dir)
    params = {"merchantId": merchant} if merchant is not None else {"jobId": job}
    _, body = client.call("GET", "/api/jobs/sync/status", params=params)
    if watch and body["status"] in ("QUEUED", "RUNNING"):
        _watch(client, body["jobId"])
    else:
        _print_job(body)


@app.command()
def resume(
    job: Annotated[str, typer.Argument(help="The failed job's id.")],
    watch: WatchOption = False,
    url: UrlOption = DEFAULT_URL,
    data_dir: DataDirOption = Path(".data"),
) -> None:
    """Resume a failed (or stalled) job from its last saved cursor."""
    client = ServiceClient.connect(url, data_dir)
    _, body = client.call("POST", "/api/jobs/sync/resume", json={"jobId": job})
    console.print(f"job [bold]{body['jobId']}[/] resumed ({body['status']})")
    if watch:
        _watch(client, body["jobId"])
