"""The local front when the worker process is not answering (crashed, restarting, port gone):
every proxied path, the merged ones included, is a clear 502 naming the cause, never a hang or
a 500, and the front keeps serving once the worker is back."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from data_pipeline.bootstrap import bootstrap_intake
from data_pipeline.devtools.intake_front import create_front_app
from data_pipeline.devtools.serving import start_server
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.harness import API_KEY, harness_settings
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
