"""The real-time path on loopback: local QStash server + pipeline service over real HTTP.

Everything is real: the `qstash` SDK publishes over HTTP to the local QStash-compatible server,
which signs deliveries that the service verifies with `qstash.Receiver`; the warehouse is chDB
through clickhouse-connect (one engine per process, so each harness gets its own database).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse
from data_pipeline.adapters.token_cipher import TokenCipher
from data_pipeline.bootstrap import Container, bootstrap
from data_pipeline.devtools.qstash_server.server import QStashDevConfig, QStashDevServer
from data_pipeline.devtools.serving import RunningServer, bind_socket, start_server
from data_pipeline.domain.webhook_auth import expected_signature
from data_pipeline.entrypoints.api.app import create_app

from shared.contract import PipelineSettings
from shared.dev_credentials import (
    DEV_QSTASH_CURRENT_SIGNING_KEY,
    DEV_QSTASH_NEXT_SIGNING_KEY,
    DEV_QSTASH_TOKEN,
)
from shared.topics import TOPIC_DELIVERY_PATHS, WEBHOOK_PATH

WEBHOOK_SECRET = "test-webhook-secret-0123456789"
API_KEY = "test-api-key-0123456789abcdef"
# Fast, deterministic retries for tests: 100 ms between attempts instead of QStash's 12 s+.
TEST_RETRY_DELAY = "100"


@dataclass
class Harness:
    settings: PipelineSettings
    qstash: QStashDevServer
    container: Container
    service: RunningServer
    http: httpx.AsyncClient = field(repr=False)

    @property
    def url(self) -> str:
        return self.service.url

    def sign(self, body: bytes) -> dict[str, str]:
        return {
            "X-Salla-Signature": expected_signature(body, WEBHOOK_SECRET.encode()),
            "Content-Type": "application/json",
        }

    async def send(self, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        sent = self.sign(body) if headers is None else headers
        return await self.http.post(self.url + WEBHOOK_PATH, content=body, headers=sent)

    @property
    def dispatcher(self) -> Any:
        assert self.qstash.state is not None
        return self.qstash.state.dispatcher

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until the queue is empty and every accepted webhook is settled."""
        metrics = self.container.metrics
        deadline = time.monotonic() + timeout
        while True:
            quiet = self.dispatcher.pending == 0
            if quiet and metrics.settled_total() >= metrics.accepted_total():
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not settled: pending={self.dispatcher.pending} "
                    f"accepted={metrics.accepted_total()} settled={metrics.settled_total()}"
                )
            await asyncio.sleep(0.02)

    async def settle_events(self, timeout: float = 30.0) -> None:
        """Wait until every accepted webhook is settled (other queue messages may be pending)."""
        metrics = self.container.metrics
        deadline = time.monotonic() + timeout
        while metrics.settled_total() < metrics.accepted_total():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not settled: accepted={metrics.accepted_total()} "
                    f"settled={metrics.settled_total()}"
                )
            await asyncio.sleep(0.02)

    async def sql(self, query: str) -> list[tuple[Any, ...]]:
        result = await asyncio.to_thread(self.container.warehouse.query, query)
        return result.rows

    def metric(self, name: str, **labels: str) -> float:
        return self.container.metrics.sample(name, **labels)


def harness_settings(
    *,
    public_url: str,
    qstash_url: str,
    chdb_path: Path,
    database: str,
    data_dir: Path,
    **extra: Any,
) -> PipelineSettings:
    values: dict[str, Any] = {
        "pipeline_environment": "test",
        "pipeline_public_url": public_url,
        "pipeline_api_key": API_KEY,
        "salla_webhook_secret": WEBHOOK_SECRET,
        "qstash_url": qstash_url,
        "qstash_token": DEV_QSTASH_TOKEN,
        "qstash_current_signing_key": DEV_QSTASH_CURRENT_SIGNING_KEY,
        "qstash_next_signing_key": DEV_QSTASH_NEXT_SIGNING_KEY,
        "qstash_retry_delay": TEST_RETRY_DELAY,
        "clickhouse_url": f"chdb://{chdb_path}",
        "clickhouse_database": database,
        "token_encryption_key": TokenCipher.generate_key(),
        "pipeline_data_dir": data_dir,
        "log_level": "WARNING",
    }
    values.update(extra)
    return PipelineSettings(**values)


async def start_harness(
    tmp: Path, chdb_path: Path, *, qstash_clock_skew: int = 0, **settings_extra: Any
) -> Harness:
    qstash = await QStashDevServer(
        QStashDevConfig(data_dir=tmp / "qstash", port=0, clock_skew_seconds=qstash_clock_skew)
    ).start()
    sock = bind_socket("127.0.0.1", 0)
    public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = harness_settings(
        public_url=public_url,
        qstash_url=qstash.url,
        chdb_path=chdb_path,
        database="t_" + uuid.uuid4().hex[:12],
        data_dir=tmp / "state",
        **settings_extra,
    )
    container = bootstrap(settings)
    container.warehouse.migrate()
    for topic, path in TOPIC_DELIVERY_PATHS.items():
        await container.queue.ensure_topic(topic, [settings.delivery_url(path)])
    service = await start_server(create_app(container), "127.0.0.1", 0, sock=sock)
    return Harness(settings, qstash, container, service, httpx.AsyncClient(timeout=30))


async def stop_harness(harness: Harness) -> None:
    await harness.http.aclose()
    if harness.qstash.state is not None:
        await harness.qstash.state.dispatcher.stop()
    await harness.service.stop()
    await harness.qstash.stop()


def warehouse_for(chdb_path: Path) -> ClickHouseWarehouse:
    warehouse = ClickHouseWarehouse(f"chdb://{chdb_path}", "t_" + uuid.uuid4().hex[:12])
    warehouse.migrate()
    return warehouse
