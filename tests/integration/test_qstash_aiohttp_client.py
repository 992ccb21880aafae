"""The QStash SDK on the aiohttp client (the local front's): each way an answer or a failure can
come back reaches the SDK and `QStashQueue` as it does through httpx. Real HTTP on loopback: the
local QStash server, and small apps for the answers it does not give (429, a stall)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from data_pipeline.adapters.qstash_queue import QStashQueue
from data_pipeline.devtools.qstash_aiohttp import AiohttpSdkClient
from data_pipeline.devtools.qstash_server.server import QStashDevConfig, QStashDevServer
from data_pipeline.devtools.serving import RunningServer, start_server
from data_pipeline.errors import TransientError
from qstash import AsyncQStash
from qstash.errors import QStashError, RateLimitExceededError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.dev_credentials import DEV_QSTASH_TOKEN
from tests.support.redis_server import free_port


def _sdk(base_url: str, client: AiohttpSdkClient, token: str = DEV_QSTASH_TOKEN) -> AsyncQStash:
    sdk = AsyncQStash(token, base_url=base_url, retry=False)
    sdk.http._client = client  # as QStashQueue does with it
    return sdk


@pytest.fixture
async def qstash(tmp_path):
    port = free_port()
    server = await QStashDevServer(
        QStashDevConfig(data_dir=tmp_path / "qstash", port=port, hold=True)
    ).start()
    yield f"http://127.0.0.1:{port}"
    await server.stop()


async def _serve(handler) -> tuple[str, RunningServer]:
    port = free_port()
    app = Starlette(routes=[Route("/{path:path}", handler, methods=["GET", "POST", "PUT"])])
    return f"http://127.0.0.1:{port}", await start_server(app, "127.0.0.1", port, lifespan="off")


async def test_publish_batch_and_text_answers_go_through_the_sdk(qstash):
    url = qstash
    client = AiohttpSdkClient()
    sdk = _sdk(url, client)
    try:
        await sdk.url_group.upsert_endpoints(
            url_group="raw", endpoints=[{"url": "http://127.0.0.1:9/raw"}]
        )  # an answer with no JSON body: the SDK reads `text`
        [first, second] = await sdk.message.batch(
            [
                {"url_group": "raw", "body": '{"n": 1}', "deduplication_id": "a"},
                {"url_group": "raw", "body": '{"n": "\u0639"}', "deduplication_id": "b"},
            ]
        )
        [again] = await sdk.message.batch(
            [{"url_group": "raw", "body": '{"n": 1}', "deduplication_id": "a"}]
        )
        stored = [(await sdk.message.get(m[0].message_id)).body for m in (first, second)]
    finally:
        await client.aclose()
    assert not first[0].deduplicated and not second[0].deduplicated
    assert again[0].deduplicated and again[0].message_id == first[0].message_id
    assert stored == ['{"n": 1}', '{"n": "\u0639"}']
    assert client.requests == 5


async def test_an_error_answer_is_the_sdks_error_with_the_servers_reason(qstash):
    url = qstash
    client = AiohttpSdkClient()
    try:
        with pytest.raises(QStashError, match=r"401.*Unauthorized"):
            await _sdk(url, client, token="not-the-token").message.batch(
                [{"url": "http://127.0.0.1:9/x", "body": "{}"}]
            )
    finally:
        await client.aclose()


async def test_a_429_answer_is_the_sdks_rate_limit_error_with_its_headers():
    async def limited(request: Request) -> Response:
        headers = {
            "Burst-RateLimit-Limit": "100",
            "Burst-RateLimit-Remaining": "0",
            "Burst-RateLimit-Reset": "1700000000",
        }
        return JSONResponse({"error": "too many requests"}, status_code=429, headers=headers)

    url, server = await _serve(limited)
    client = AiohttpSdkClient()
    try:
        with pytest.raises(RateLimitExceededError) as raised:
            await _sdk(url, client).message.batch([{"url": "http://127.0.0.1:9/x", "body": "{}"}])
    finally:
        await client.aclose()
        await server.stop()
    assert (raised.value.limit, raised.value.remaining) == ("100", "0")


async def test_nothing_listening_is_httpxs_connect_error_and_the_queue_answers_unavailable():
    url = f"http://127.0.0.1:{free_port()}"
    client = AiohttpSdkClient()
    try:
        with pytest.raises(httpx.ConnectError):
            await _sdk(url, client).message.batch([{"url": "http://127.0.0.1:9/x", "body": "{}"}])
    finally:
        await client.aclose()
    queue = QStashQueue(
        token=DEV_QSTASH_TOKEN,
        base_url=url,
        retries=3,
        retry_delay=None,
        http_client=AiohttpSdkClient(),
    )
    try:
        with pytest.raises(TransientError, match="queue unavailable: ConnectError"):
            await queue.publish_raw_event(b"{}", dedup_id="d", accepted_at_ms=0, sensitive=False)
    finally:
        await queue.close()


async def test_a_server_that_never_answers_is_httpxs_timeout():
    stalled = asyncio.Event()

    async def stall(request: Request) -> Response:
        stalled.set()
        await asyncio.sleep(1.5)  # past the client's deadline, short for the server's stop
        return Response()

    url, server = await _serve(stall)
    client = AiohttpSdkClient(timeout_seconds=0.3)
    try:
        with pytest.raises(httpx.TimeoutException):
            await _sdk(url, client).message.batch([{"url": "http://127.0.0.1:9/x", "body": "{}"}])
    finally:
        await client.aclose()
        await client.aclose()  # closing twice is harmless
        await server.stop()
    assert stalled.is_set()
