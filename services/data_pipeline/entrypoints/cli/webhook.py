"""`salla-pipeline webhook send`: a correctly signed Salla webhook to a running stack."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from data_pipeline.entrypoints.cli.console import console, fail
from data_pipeline.entrypoints.cli.service import secret_from_env_or_stack

app = typer.Typer(help="Send Salla webhooks by hand.", no_args_is_help=True)


def load_body(event: str, file: Path | None, merchant: int) -> bytes:
    from data_pipeline.devtools.salla_samples import encode, envelope, sample_envelope

    if file is None:
        return encode(sample_envelope(event, merchant))
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        fail(f"cannot read {file}: {error}")
    if not isinstance(document, dict):
        fail(f"{file} must hold a JSON object (an envelope or its data)")
    if "event" in document and "data" in document:
        if document["event"] != event:
            fail(f"{file} holds a {document['event']!r} envelope, not {event!r}")
        return file.read_bytes()
    from datetime import datetime

    return encode(envelope(event, merchant, datetime.now().astimezone(), document))


@app.command()
def send(
    event: Annotated[str, typer.Argument(help="Salla event name, e.g. order.created.")],
    file: Annotated[
        Path | None, typer.Option("--file", help="JSON envelope, or just its data object.")
    ] = None,
    url: Annotated[str, typer.Option(envvar="PIPELINE_PUBLIC_URL", help="Service base URL.")] = (
        "http://127.0.0.1:8000"
    ),
    merchant: Annotated[int, typer.Option(help="Merchant (store) id.")] = 1305146709,
    data_dir: Annotated[Path, typer.Option("--data-dir")] = Path(".data"),
) -> None:
    """Sign EVENT with the webhook secret and POST it to /api/webhooks/salla."""
    from data_pipeline.domain.webhook_auth import expected_signature

    body = load_body(event, file, merchant)
    secret = secret_from_env_or_stack("SALLA_WEBHOOK_SECRET", "webhook_secret", data_dir)
    strategy = os.environ.get("SALLA_WEBHOOK_STRATEGY", "signature")
    headers = {"Content-Type": "application/json"}
    if strategy == "token":
        headers |= {"X-Salla-Security-Strategy": "Token", "Authorization": secret}
    else:
        headers |= {
            "X-Salla-Security-Strategy": "Signature",
            "X-Salla-Signature": expected_signature(body, secret.encode()),
        }
    target = url.rstrip("/") + "/api/webhooks/salla"
    import httpx  # here, not for every command (see cli/service.py)

    try:
        response = httpx.post(target, content=body, headers=headers, timeout=30)
    except httpx.HTTPError as error:
        fail(f"could not reach {target}: {error}")
    style = "green" if response.status_code == 200 else "red"
    console.print(f"[{style}]{response.status_code}[/] {response.text}")
    if response.status_code != 200:
        raise typer.Exit(1)
