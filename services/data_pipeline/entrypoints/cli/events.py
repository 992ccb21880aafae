"""`salla-pipeline events tail`: the domain events as QStash accepts them (the local stack)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Annotated, Any

import typer

from data_pipeline.entrypoints.cli.console import console, fail, run
from shared.dev_credentials import DEV_QSTASH_TOKEN
from shared.domain_events import EVENT_NAMES, TOPIC_PREFIX, event_topic

app = typer.Typer(help="Domain events published for the rest of the platform.")


@app.command()
def tail(
    topic: Annotated[
        str | None, typer.Option(help="Only this event, e.g. order.created (default: all).")
    ] = None,
    qstash_url: Annotated[
        str, typer.Option(envvar="QSTASH_URL", help="QStash API base URL.")
    ] = "http://127.0.0.1:8080",
    token: Annotated[
        str, typer.Option(envvar="QSTASH_TOKEN", help="QStash token.", show_default=False)
    ] = DEV_QSTASH_TOKEN,
    topic_prefix: Annotated[str, typer.Option(envvar="QSTASH_TOPIC_PREFIX")] = "",
    since: Annotated[float, typer.Option(help="Start this many seconds back.")] = 60.0,
    once: Annotated[bool, typer.Option(help="Print what is there and stop.")] = False,
) -> None:
    """Print each domain event as it is published (type, subject, version, data), from QStash's
    message log; Ctrl-C stops."""
    if topic is not None and topic not in EVENT_NAMES:
        fail(f"--topic {topic[:60]!r}: not a domain event (one of {', '.join(EVENT_NAMES)})")
    wanted = topic_prefix + (event_topic(topic) if topic else TOPIC_PREFIX)

    async def follow() -> None:
        from qstash import AsyncQStash
        from qstash.log import LogState

        client = AsyncQStash(token, base_url=qstash_url)
        start = int((time.time() - since) * 1000)
        seen: set[str] = set()
        while True:
            logs = await client.log.list(filter={"state": LogState.CREATED, "from_time": start})
            for entry in sorted(logs.logs, key=lambda log: log.time):
                if entry.message_id in seen or not (entry.url_group or "").startswith(wanted):
                    continue
                seen.add(entry.message_id)
                start = max(start, entry.time)
                _show(entry.url_group or "", entry.body_base64)
            if once:
                return
            await asyncio.sleep(1.0)

    try:
        run(follow())
    except KeyboardInterrupt:
        return
    except Exception as error:  # the queue unreachable, a bad token: one line, not a trace
        fail(f"cannot read QStash's log at {qstash_url}: {str(error)[:200]}")


def _show(group: str, body_base64: str | None) -> None:
    try:
        event: dict[str, Any] = json.loads(base64.b64decode(body_base64 or ""))
    except ValueError:
        console.print(f"[dim]{group}[/]: (not JSON)")
        return
    data = dict(event.get("data") or {})
    version = data.pop("version", None)
    console.print(
        f"[bold]{event.get('type', '?')}[/] {event.get('subject', '?')} v{version} "
        f"[dim]{event.get('time', '')}[/] {json.dumps(data, ensure_ascii=False)[:300]}",
        markup=True,
        highlight=False,
    )
