"""The `salla-pipeline` command line."""

from __future__ import annotations

import typer

from data_pipeline.entrypoints.cli import (
    cdc,
    dlq,
    events,
    importer,
    rag,
    rebuild,
    stack,
    sync,
    warehouse,
    webhook,
)

app = typer.Typer(
    name="salla-pipeline",
    help="Salla data pipeline: local stack, operations and tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)
app.command()(stack.dev)
app.command("qstash-dev")(stack.qstash_dev)
app.command("salla-emulator")(stack.salla_emulator)
app.command("embeddings-dev")(stack.embeddings_dev)
app.command("intake-dev", hidden=True)(stack.intake_dev)  # started by `dev`
app.command()(warehouse.migrate)
app.command()(warehouse.replay)
app.command("import-events")(importer.import_events)
app.command()(rebuild.rebuild)
app.command()(stack.demo)
app.add_typer(webhook.app, name="webhook")
app.add_typer(dlq.app, name="dlq")
app.add_typer(sync.app, name="sync")
app.add_typer(rag.app, name="rag")
app.add_typer(cdc.app, name="cdc")
app.add_typer(events.app, name="events")

if __name__ == "__main__":
    app()
