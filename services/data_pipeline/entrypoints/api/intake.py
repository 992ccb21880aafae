"""WebhookIngress over HTTP: the endpoint Salla delivers to, and the intake function's app.

Kept free of FastAPI on purpose. The intake function (PIPELINE_ROLE=intake) serves only this
route and liveness; Salla gives a webhook 3 s and retries only a few times, so its cold start
must not pay for FastAPI's pydantic models, the warehouse client, Redis or the routers it never
serves (about a second of a cold start, measured: docs/benchmarks.md). The worker's FastAPI app
registers the same handler (`fast_route`) and documents it (routes/webhooks.py).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from data_pipeline.domain.envelope import MAX_WEBHOOK_BYTES
from data_pipeline.entrypoints.api.body import read_limited
from data_pipeline.entrypoints.api.errors import webhook_answer
from shared.topics import HEALTH_PATH, WEBHOOK_PATH

if TYPE_CHECKING:
    from data_pipeline.bootstrap import IntakeContainer


async def receive_salla_webhook(request: Request) -> Response:
    """Verify the Salla signature and hand the raw event to QStash; 200 once durably queued."""
    container: IntakeContainer = request.app.state.container  # the hot path skips DI on purpose
    return await _acknowledge(container, read_limited(request, MAX_WEBHOOK_BYTES), request.headers)


async def _acknowledge(
    container: IntakeContainer, body: Awaitable[bytes], headers: Mapping[str, str]
) -> Response:
    started = time.perf_counter()
    metrics = container.metrics
    try:
        raw = await body
        acceptance = await container.ingress.accept(raw, headers)
    except Exception as error:
        answer = webhook_answer(error)
        metrics.webhooks_received.labels(str(answer.status_code)).inc()
        return answer
    metrics.webhooks_received.labels("200").inc()
    metrics.ack_seconds.observe(time.perf_counter() - started)
    body = orjson.dumps(
        {"status": "accepted", "event": acceptance.event, "deduplicated": acceptance.deduplicated}
    )
    return Response(body, media_type="application/json")


class WebhookFastPath:
    """ASGI in front of `app`: `POST /api/webhooks/salla` answered directly, without the
    routing, middleware and request objects of Starlette (a third of the front's CPU per
    webhook, measured with py-spy); every other request goes to `app`. For the apps whose only
    busy route is the webhook: the intake function's and the local stack's front."""

    def __init__(self, app: Starlette, container: IntakeContainer) -> None:
        self.app = app
        self.container = container

    @property
    def state(self) -> State:
        """The wrapped app's state (its container), as for any Starlette app."""
        return self.app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != WEBHOOK_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)  # two attributes: the cost is Starlette's routing
        body = read_limited(request, MAX_WEBHOOK_BYTES)
        try:
            answer = await _acknowledge(self.container, body, request.headers)
        except ClientDisconnect:
            return  # Salla hung up before the body arrived: nothing was queued, no one to answer
        await answer(scope, receive, send)


def fast_route() -> Route:
    """The serving route; register it ahead of any documented FastAPI route."""
    return Route(WEBHOOK_PATH, receive_salla_webhook, methods=["POST"])


async def liveness(request: Request) -> Response:
    return JSONResponse({"status": "ok", "checks": {}})


def create_intake_app(container: IntakeContainer) -> ASGIApp:
    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        await container.aclose()

    app = Starlette(
        routes=[fast_route(), Route(HEALTH_PATH, liveness, methods=["GET"])], lifespan=lifespan
    )
    app.state.container = container
    return WebhookFastPath(app, container)
