"""The QStash v2 HTTP API, for local development and tests.

Implemented from Upstash's public docs and the official SDKs' behaviour
(../shared/reference/qstash.md): publish to a URL or URL group, enqueue, batch, deduplication
(by id and by content), delays and Not-Before, retries with QStash's backoff and retry-delay
expressions, 489 non-retryable, callbacks and failure callbacks, queues (FIFO, parallelism,
pause), flow control (parallelism, rate per period, pause, pins), schedules (cron with
CRON_TZ, pause, queues), URL groups, message get/cancel, the DLQ (list, get, delete, retry),
labels, signing keys and the event log. The official `qstash` SDK's own test suite runs
against it (tests/compat/qstash_sdk/). What it leaves out, and why: docs/local-qstash.md.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from data_pipeline.devtools.qstash_server import history, publishing, resources, schedules
from data_pipeline.devtools.qstash_server.dispatcher import Dispatcher
from data_pipeline.devtools.qstash_server.drafts import ApiError
from data_pipeline.devtools.qstash_server.store import QStashStore

if TYPE_CHECKING:
    from data_pipeline.devtools.qstash_server.schedules import Scheduler

Handler = Callable[[Request, "ServerState"], Awaitable[Any]]


@dataclass
class ServerState:
    store: QStashStore
    dispatcher: Dispatcher
    token: str
    keys: list[str]  # [current, next]
    max_body_bytes: int
    topics: dict[str, dict[str, Any]] = field(default_factory=dict)  # cache of the store's
    scheduler: Scheduler | None = None

    def __post_init__(self) -> None:
        self.topics.update(self.store.topics())


def create_qstash_app(state: ServerState) -> Starlette:
    def route(path: str, handler: Handler, methods: list[str]) -> Route:
        async def endpoint(request: Request) -> Response:
            if not _authorized(request, state.token):
                return JSONResponse({"error": "Unauthorized"}, status_code=401)
            try:
                result = await handler(request, state)
            except ApiError as error:
                return JSONResponse({"error": str(error)}, status_code=error.status)
            return result if isinstance(result, Response) else JSONResponse(result)

        return Route(path, endpoint, methods=methods)

    routes = [
        route("/v2/publish/{destination:path}", publishing.publish, ["POST"]),
        route("/v2/enqueue/{rest:path}", publishing.enqueue, ["POST"]),
        route("/v2/batch", publishing.batch, ["POST"]),
        route("/v2/messages/{message_id}", history.get_message, ["GET"]),
        route("/v2/messages/{message_id}", history.cancel_message, ["DELETE"]),
        route("/v2/messages", history.cancel_messages, ["DELETE"]),
        route("/v2/topics", resources.list_topics, ["GET"]),
        route("/v2/topics/{name}", resources.get_topic, ["GET"]),
        route("/v2/topics/{name}", resources.delete_topic, ["DELETE"]),
        route("/v2/topics/{name}/endpoints", resources.upsert_endpoints, ["POST"]),
        route("/v2/topics/{name}/endpoints", resources.remove_endpoints, ["DELETE"]),
        route("/v2/queues", resources.upsert_queue, ["POST"]),
        route("/v2/queues", resources.list_queues, ["GET"]),
        route("/v2/queues/{name}", resources.get_queue, ["GET"]),
        route("/v2/queues/{name}", resources.delete_queue, ["DELETE"]),
        route("/v2/queues/{name}/pause", resources.pause_queue, ["POST"]),
        route("/v2/queues/{name}/resume", resources.resume_queue, ["POST"]),
        route("/v2/flowControl", resources.list_flow_keys, ["GET"]),
        route("/v2/flowControl/{key}", resources.get_flow_key, ["GET"]),
        route("/v2/flowControl/{key}/{action}", resources.flow_key_action, ["POST"]),
        route("/v2/globalParallelism", resources.global_parallelism, ["GET"]),
        # Both SDKs pause and resume schedules with PATCH; the OpenAPI document says POST.
        route("/v2/schedules/{schedule_id}/pause", schedules.pause, ["PATCH", "POST"]),
        route("/v2/schedules/{schedule_id}/resume", schedules.resume, ["PATCH", "POST"]),
        route("/v2/schedules", schedules.list_schedules, ["GET"]),
        route("/v2/schedules/{schedule_id}", schedules.get_schedule, ["GET"]),
        route("/v2/schedules/{schedule_id}", schedules.delete_schedule, ["DELETE"]),
        route("/v2/schedules/{destination:path}", schedules.create, ["POST"]),
        route("/v2/dlq", history.list_dlq, ["GET"]),
        route("/v2/dlq", history.delete_dlq_many, ["DELETE"]),
        route("/v2/dlq/retry", history.retry_dlq_many, ["POST"]),
        route("/v2/dlq/retry/{dlq_id}", history.retry_dlq, ["POST"]),
        route("/v2/dlq/{dlq_id}", history.get_dlq, ["GET"]),
        route("/v2/dlq/{dlq_id}", history.delete_dlq, ["DELETE"]),
        route("/v2/keys", resources.get_keys, ["GET"]),
        route("/v2/keys/rotate", resources.rotate_keys, ["POST"]),
        route("/v2/events", history.list_events, ["GET"]),
        route("/v2/logs", history.list_logs, ["GET"]),
        Route("/healthz", lambda request: JSONResponse({"status": "ok"}), methods=["GET"]),
    ]
    return Starlette(routes=routes)


def _authorized(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    given = (
        header[7:]
        if header[:7].lower() == "bearer "
        else request.query_params.get("qstash_token", "")
    )
    return hmac.compare_digest(given.encode(), token.encode())
