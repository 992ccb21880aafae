"""The local front when the worker process is not answering (crashed, restarting, port gone):
every proxied path, the merged ones included, is a clear 502 naming the cause, never a hang or
a 500, and the front keeps serving once the worker is back."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from data_pipeline.bootstrap import bootstrap_intake
from data_pipeline.devtools.intake_front import create_front_app
from data_pipeline.devtools.qstash_aiohttp import AiohttpSdkClient
from data_pipeline.devtools.qstash_server.server import QStashDevConfig, QStashDevServer
from data_pipeline.devtools.salla_samples import encode, sample_envelope
from data_pipeline.devtools.serving import start_server
from data_pipeline.domain.webhook_auth import expected_signature
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared.topics import RAW_EVENTS_TOPIC, WEBHOOK_PATH
from tests.support.harness import API_KEY, WEBHOOK_SECRET, harness_settings
from tests.support.redis_server import free_port


@pytest.fixture
def settings(tmp_path):
    return harness_settings(
        public_url="http://127.0.0.1:8000",
        qstash_url=f"http://127.0.0.1:{free_port()}",
        chdb_path=tmp_path / "chdb",
        database="analytics",
        data_dir=tmp_path,
    )


def _front(settings, worker_url):
    return create_front_app(bootstrap_intake(settings), worker_url)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/health"),
        ("GET", "/metrics"),
        ("GET", "/api/dev/settlement"),
        ("POST", "/api/sync/historical"),
        ("GET", "/docs"),
    ],
)
async def test_every_proxied_path_is_a_502_with_the_reason_when_the_worker_is_down(
    settings, method, path
):
    app = _front(settings, f"http://127.0.0.1:{free_port()}")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://front") as client:
        answer = await asyncio.wait_for(
            client.request(
                method,
                path,
                headers={"Authorization": f"Bearer {API_KEY}"},
                content=b'{"merchant_id": 1}' if method == "POST" else None,
            ),
            timeout=30,
        )
    assert answer.status_code == 502
    assert answer.json() == {"detail": "the worker process is not answering: ConnectError"}


async def test_the_front_proxies_again_once_the_worker_is_back(settings):
    port = free_port()
    app = _front(settings, f"http://127.0.0.1:{port}")
    transport = httpx.ASGITransport(app=app)

    async def health(_request):
        return JSONResponse({"status": "ok"})

    worker = Starlette(routes=[Route("/api/health", health)])
    async with httpx.AsyncClient(transport=transport, base_url="http://front") as client:
        down = await client.get("/api/health")
        assert down.status_code == 502
        server = await start_server(worker, "127.0.0.1", port)
        try:
            up = await client.get("/api/health")
        finally:
            await server.stop()
    assert up.status_code == 200
    assert up.json() == {"status": "ok"}


async def test_webhooks_through_the_fronts_aiohttp_client_publish_and_fail_over_cleanly(
    tmp_path,
):
    """The front publishes through the QStash SDK on an aiohttp client (`intake-dev`): with
    the queue down a webhook is a 503 naming it (nothing accepted), once the queue is up it is
    published, and a repeat is reported as QStash's deduplication."""
    port = free_port()
    settings = harness_settings(
        public_url="http://127.0.0.1:8000",
        qstash_url=f"http://127.0.0.1:{port}",
        chdb_path=tmp_path / "chdb",
        database="analytics",
        data_dir=tmp_path,
    )
    aiohttp_client = AiohttpSdkClient()
    container = bootstrap_intake(settings, qstash_http_client=aiohttp_client)
    app = create_front_app(container, f"http://127.0.0.1:{free_port()}")
    body = encode(sample_envelope("order.created"))
    headers = {
        "Content-Type": "application/json",
        "X-Salla-Signature": expected_signature(body, WEBHOOK_SECRET.encode()),
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://front") as client:
        down = await client.post(WEBHOOK_PATH, content=body, headers=headers)
        assert down.status_code == 503
        assert "queue unavailable" in down.text
        qstash = await QStashDevServer(
            QStashDevConfig(data_dir=tmp_path / "qstash", port=port, hold=True)
        ).start()
        try:
            await container.queue.ensure_topic(RAW_EVENTS_TOPIC, ["http://127.0.0.1:9/raw"])
            first = await client.post(WEBHOOK_PATH, content=body, headers=headers)
            again = await client.post(WEBHOOK_PATH, content=body, headers=headers)
            assert qstash.state is not None
            stored = qstash.state.dispatcher.pending
            used = aiohttp_client.requests
        finally:
            await container.aclose()
            await qstash.stop()
    assert (first.status_code, first.json()["deduplicated"]) == (200, False)
    assert (again.status_code, again.json()["deduplicated"]) == (200, True)
    assert stored == 1
    assert used >= 3  # the topic, the publishes and the repeat went through the aiohttp client
    assert container.metrics.accepted_total() == 2
