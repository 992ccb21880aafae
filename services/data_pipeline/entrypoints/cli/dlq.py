"""`salla-pipeline dlq list|replay`: inspect and replay dead-lettered deliveries (any QStash)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from data_pipeline.entrypoints.cli.console import console, fail
from shared.dev_credentials import DEV_QSTASH_TOKEN

if TYPE_CHECKING:
    from qstash import QStash

app = typer.Typer(help="Dead-letter queue operations.", no_args_is_help=True)
QStashUrl = Annotated[str, typer.Option(envvar="QSTASH_URL", help="QStash API base URL.")]
QStashToken = Annotated[
    str, typer.Option(envvar="QSTASH_TOKEN", help="QStash token.", show_default=False)
]


def _client(url: str, token: str) -> QStash:
    from qstash import QStash  # here: every other command starts without the SDK (~0.1 s)

    return QStash(token, base_url=url, retry=False)


def _describe(body: str | None) -> tuple[str, str]:
    try:
        document: Any = json.loads(body or "")
        return str(document.get("event", "?")), str(document.get("merchant", "?"))
    except (json.JSONDecodeError, AttributeError):
        return ("[dim]redacted[/]", "?") if body is None else ("?", "?")


@app.command("list")
def list_(url: QStashUrl = "http://127.0.0.1:8080", token: QStashToken = DEV_QSTASH_TOKEN) -> None:
    """List dead-lettered messages with the reason QStash recorded."""
    from qstash.errors import QStashError

    client, cursor, rows = _client(url, token), None, []
    try:
        while True:
            page = client.dlq.list(cursor=cursor, count=100)
            rows.extend(page.messages)
            cursor = page.cursor
            if not cursor:
                break
    except QStashError as error:
        fail(f"cannot list the DLQ at {url}: {error}")
    table = Table(title=f"Dead-letter queue ({len(rows)})")
    for column in ("dlq id", "event", "merchant", "status", "reason", "failed"):
        table.add_column(column)
    for message in rows:
        event, merchant = _describe(message.body)
        reason = (message.response_body or "")[:80]
        table.add_row(
            message.dlq_id,
            event,
            merchant,
            str(message.response_status),
            reason,
            datetime.fromtimestamp(int(message.dlq_id.split("-")[0]) / 1000, UTC).isoformat(
                timespec="seconds"
            ),
        )
    console.print(table)


@app.command()
def replay(
    dlq_id: Annotated[str | None, typer.Argument(help="The DLQ id to replay.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every dead letter.")] = False,
    url: QStashUrl = "http://127.0.0.1:8080",
    token: QStashToken = DEV_QSTASH_TOKEN,
) -> None:
    """Publish dead letters again (same body, same idempotent path) and drop them from the DLQ."""
    from qstash.errors import QStashError

    if (dlq_id is None) == (not all_):
        fail("give one DLQ id or --all")
    client = _client(url, token)
    try:
        ids = [dlq_id] if dlq_id else _all_ids(client)
        for one in ids:
            response = client.http.request(path=f"/v2/dlq/retry/{one}", method="POST")
            console.print(f"replayed {one} as {response['messageId']}")
    except QStashError as error:
        fail(f"replay failed: {error}")
    if not ids:
        console.print("the DLQ is empty")


def _all_ids(client: QStash) -> list[str]:
    ids, cursor = [], None
    while True:
        page = client.dlq.list(cursor=cursor, count=100)
        ids.extend(message.dlq_id for message in page.messages)
        cursor = page.cursor
        if not cursor:
            return ids
