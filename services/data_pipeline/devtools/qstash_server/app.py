"""The QStash v2 HTTP API subset the `qstash` 3.x SDK uses here, for local development and tests.

Implemented from the public docs and observed SDK behaviour (../shared/reference/qstash.md):
publish to a URL or URL group, batch, deduplication ids (and content-based dedup), delays and
Not-Before, retries with QStash's backoff, Upstash-Retry-Delay expressions, 489 non-retryable,
URL groups, message get/cancel, the DLQ (list, get, delete, retry), signing keys, and the event
log. Features outside that subset (callbacks, flow control, queues, schedules) are refused with
a 400 naming them, never silently ignored. Production uses Upstash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from data_pipeline.devtools.qstash_server.dispatcher import Dispatcher
from data_pipeline.devtools.qstash_server.model import DeadLetter, Message, new_message_id, now_ms
from data_pipeline.devtools.qstash_server.store import QStashStore
from data_pipeline.devtools.qstash_server.timing import (
    InvalidTiming,
    compile_retry_delay,
    parse_delay,
)

DEDUP_WINDOW_MS = 10 * 60 * 1000
DEFAULT_RETRIES = 3
MAX_RETRIES = 20
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH"})
_UNSUPPORTED = {
    "upstash-callback": "callbacks",
    "upstash-failure-callback": "failure callbacks",
    "upstash-flow-control-key": "flow control",
    "upstash-cron": "schedules",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ServerState:
    store: QStashStore
    dispatcher: Dispatcher
    token: str
    keys: list[str]  # [current, next]
    max_body_bytes: int
    topics: dict[str, dict[str, Any]] = field(default_factory=dict)  # cache of the store's

    def __post_init__(self) -> None:
        self.topics.update(self.store.topics())


def create_qstash_app(state: ServerState) -> Starlette:
    def route(
        path: str, handler: Callable[[Request, ServerState], Awaitable[Any]], methods: list[str]
    ) -> Route:
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
        route("/v2/publish/{destination:path}", publish, ["POST"]),
        route("/v2/batch", batch, ["POST"]),
        route("/v2/enqueue/{rest:path}", unsupported("queues"), ["POST"]),
        route("/v2/schedules/{rest:path}", unsupported("schedules"), ["GET", "POST", "DELETE"]),
        route("/v2/messages/{message_id}", get_message, ["GET"]),
        route("/v2/messages/{message_id}", cancel_message, ["DELETE"]),
        route("/v2/messages", cancel_messages, ["DELETE"]),
        route("/v2/topics", list_topics, ["GET"]),
        route("/v2/topics/{name}", get_topic, ["GET"]),
        route("/v2/topics/{name}", delete_topic, ["DELETE"]),
        route("/v2/topics/{name}/endpoints", upsert_endpoints, ["POST"]),
        route("/v2/topics/{name}/endpoints", remove_endpoints, ["DELETE"]),
        route("/v2/dlq", list_dlq, ["GET"]),
        route("/v2/dlq", delete_dlq_many, ["DELETE"]),
        route("/v2/dlq/retry", retry_dlq_many, ["POST"]),
        route("/v2/dlq/retry/{dlq_id}", retry_dlq, ["POST"]),
        route("/v2/dlq/{dlq_id}", get_dlq, ["GET"]),
        route("/v2/dlq/{dlq_id}", delete_dlq, ["DELETE"]),
        route("/v2/keys", get_keys, ["GET"]),
        route("/v2/keys/rotate", rotate_keys, ["POST"]),
        route("/v2/events", list_events, ["GET"]),
        route("/v2/logs", list_logs, ["GET"]),
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


def unsupported(feature: str) -> Callable[[Request, ServerState], Awaitable[Any]]:
    async def handler(request: Request, state: ServerState) -> Any:
        raise ApiError(400, f"{feature} are not supported by the local QStash-compatible server")

    return handler


# -- publishing ----------------------------------------------------------------------------------
@dataclass
class Draft:
    """A publish request, validated, before it fans out into messages."""

    destination: str
    body: bytes
    headers: dict[str, list[str]]
    method: str
    retries: int
    retry_delay: str | None
    not_before_ms: int
    dedup_id: str | None
    timeout_seconds: float | None
    label: str | None
    redact_body: bool
    caller_ip: str | None


async def publish(request: Request, state: ServerState) -> Response:
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    destination = raw_path.decode("latin-1").split("/v2/publish/", 1)[1]
    if request.url.query:
        destination += "?" + request.url.query
    if not destination.startswith(("http://", "https://")):
        destination = unquote(destination)
    body = await _read_body(request, state.max_body_bytes)
    pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
    draft = _draft(destination, body, pairs, request.client.host if request.client else None)
    (outcome,) = _accept_all([draft], state)
    if isinstance(outcome, ApiError):
        raise outcome
    result, duplicate = outcome
    return JSONResponse(result, status_code=202 if duplicate else 200)


async def batch(request: Request, state: ServerState) -> Any:
    """One entry's error is reported in its place; the other entries are still published."""
    entries = _json(await _read_body(request, state.max_body_bytes))
    if not isinstance(entries, list):
        raise ApiError(400, "batch body must be a JSON array")
    caller = request.client.host if request.client else None
    drafts: list[Draft | ApiError] = []
    for entry in entries:
        try:
            drafts.append(_batch_draft(entry, caller))
        except ApiError as error:
            drafts.append(error)
    accepted = iter(_accept_all([d for d in drafts if isinstance(d, Draft)], state))
    results: list[Any] = []
    for draft in drafts:
        outcome = draft if isinstance(draft, ApiError) else next(accepted)
        results.append({"error": str(outcome)} if isinstance(outcome, ApiError) else outcome[0])
    return results


def _batch_draft(entry: Any, caller: str | None) -> Draft:
    if not isinstance(entry, dict) or not isinstance(entry.get("destination"), str):
        raise ApiError(400, "each batch entry needs a destination")
    if entry.get("queue"):
        raise ApiError(400, "queues are not supported by the local QStash-compatible server")
    headers = entry.get("headers") or {}
    body = entry.get("body") or ""
    if not isinstance(headers, dict) or not isinstance(body, str):
        raise ApiError(400, "batch entry headers must be an object and body a string")
    pairs = [(str(k), str(v)) for k, v in headers.items()]
    return _draft(entry["destination"], body.encode(), pairs, caller)


def _draft(
    destination: str, body: bytes, header_pairs: list[tuple[str, str]], caller_ip: str | None
) -> Draft:
    lowered = {name.lower(): value for name, value in header_pairs}
    for header, feature in _UNSUPPORTED.items():
        if header in lowered:
            raise ApiError(
                400, f"{feature} are not supported by the local QStash-compatible server"
            )
    forwarded: dict[str, list[str]] = {}
    for name, value in header_pairs:
        if name.lower().startswith("upstash-forward-"):
            forwarded.setdefault(name[len("upstash-forward-") :], []).append(value)
    if "content-type" in lowered:
        forwarded["Content-Type"] = [lowered["content-type"]]
    method = lowered.get("upstash-method", "POST").upper()
    if method not in _METHODS:
        raise ApiError(400, f"invalid Upstash-Method {method!r}")
    try:
        retries = int(lowered.get("upstash-retries", DEFAULT_RETRIES))
        if not 0 <= retries <= MAX_RETRIES:
            raise ValueError
    except ValueError:
        raise ApiError(400, f"Upstash-Retries must be an integer 0..{MAX_RETRIES}") from None
    try:
        retry_delay = lowered.get("upstash-retry-delay")
        if retry_delay:
            compile_retry_delay(retry_delay)
        not_before_ms = now_ms()
        if "upstash-not-before" in lowered:
            not_before_ms = int(lowered["upstash-not-before"]) * 1000
        elif "upstash-delay" in lowered:
            not_before_ms += int(parse_delay(lowered["upstash-delay"]) * 1000)
        timeout = lowered.get("upstash-timeout")
        timeout_seconds = parse_delay(timeout) if timeout else None
    except (InvalidTiming, ValueError) as error:
        raise ApiError(400, str(error) or "invalid timing header") from None
    dedup_id = lowered.get("upstash-deduplication-id")
    if (
        dedup_id is None
        and lowered.get("upstash-content-based-deduplication", "").lower() == "true"
    ):
        fingerprint = json.dumps([destination, sorted(forwarded.items())]).encode() + body
        dedup_id = hashlib.sha256(fingerprint).hexdigest()
    redact = {part.strip().lower() for part in lowered.get("upstash-redact-fields", "").split(",")}
    return Draft(
        destination=destination,
        body=body,
        headers=forwarded,
        method=method,
        retries=retries,
        retry_delay=retry_delay,
        not_before_ms=not_before_ms,
        dedup_id=dedup_id,
        timeout_seconds=timeout_seconds,
        label=lowered.get("upstash-label"),
        redact_body="body" in redact,
        caller_ip=caller_ip,
    )


def _accept_all(drafts: list[Draft], state: ServerState) -> list[tuple[Any, bool] | ApiError]:
    """Dedup, fan out to endpoints, persist (one transaction), then schedule.

    Each outcome is (response body, deduplicated) or the ApiError of that draft.
    """
    outcomes: list[tuple[Any, bool] | ApiError] = []
    accepted: list[Message] = []
    with state.store.transaction() as db:
        for draft in drafts:
            try:
                outcome, messages = _accept_one(db, draft, state)
            except ApiError as error:
                outcomes.append(error)
                continue
            outcomes.append(outcome)
            accepted.extend(messages)
    for message in accepted:
        state.dispatcher.schedule(message)
    return outcomes


def _accept_one(
    db: Any, draft: Draft, state: ServerState
) -> tuple[tuple[Any, bool], list[Message]]:
    targets = _targets(draft.destination, state)
    is_group = not draft.destination.startswith(("http://", "https://"))
    scope_key = f"{draft.destination}\n{draft.dedup_id}" if draft.dedup_id else None
    if scope_key is not None:
        previous = state.store.dedup_lookup(db, scope_key)
        if previous is not None:
            return (_mark_duplicate(previous), True), []
    messages = [
        Message(
            message_id=new_message_id(),
            url=url,
            method=draft.method,
            body=draft.body,
            headers=draft.headers,
            max_retries=draft.retries,
            created_at_ms=now_ms(),
            not_before_ms=draft.not_before_ms,
            topic_name=draft.destination if is_group else None,
            endpoint_name=name,
            retry_delay=draft.retry_delay,
            timeout_seconds=draft.timeout_seconds,
            label=draft.label,
            redact_body=draft.redact_body,
            caller_ip=draft.caller_ip,
        )
        for url, name in targets
    ]
    state.store.save_messages(db, messages)
    result: Any = (
        [{"messageId": m.message_id, "url": m.url} for m in messages]
        if is_group
        else {"messageId": messages[0].message_id}
    )
    if scope_key is not None:
        state.store.dedup_remember(db, scope_key, result, DEDUP_WINDOW_MS)
    return (result, False), messages


def _mark_duplicate(previous: Any) -> Any:
    if isinstance(previous, list):
        return [{**entry, "deduplicated": True} for entry in previous]
    return {**previous, "deduplicated": True}


def _targets(destination: str, state: ServerState) -> list[tuple[str, str | None]]:
    if destination.startswith(("http://", "https://")):
        _check_url(destination)
        return [(destination, None)]
    if not _NAME.match(destination):
        raise ApiError(400, f"invalid destination {destination[:100]!r}")
    topic = state.topics.get(destination)
    if topic is None:
        raise ApiError(404, f"url group {destination} not found")
    if not topic["endpoints"]:
        raise ApiError(400, f"url group {destination} has no endpoints")
    return [(endpoint["url"], endpoint.get("name")) for endpoint in topic["endpoints"]]


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(400, f"invalid destination url {url[:100]!r}")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"message body exceeds {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"message body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "body is not JSON") from None


# -- messages ------------------------------------------------------------------------------------
async def get_message(request: Request, state: ServerState) -> Any:
    message = state.dispatcher.message(request.path_params["message_id"])
    if message is None:
        raise ApiError(404, "message not found")
    return message.api_json()


async def cancel_message(request: Request, state: ServerState) -> Response:
    if not _cancel(state, request.path_params["message_id"]):
        raise ApiError(404, "message not found")
    return Response(status_code=202)


async def cancel_messages(request: Request, state: ServerState) -> Any:
    body = _json(await _read_body(request, state.max_body_bytes)) or {}
    ids = body.get("messageIds") if isinstance(body, dict) else None
    ids = ids or request.query_params.getlist("messageIds") or None
    targets = ids if ids is not None else [m.message_id for m in state.dispatcher.all_messages()]
    return {"cancelled": sum(_cancel(state, str(message_id)) for message_id in targets)}


def _cancel(state: ServerState, message_id: str) -> bool:
    message = state.dispatcher.forget(message_id)
    if message is None:
        return False
    with state.store.transaction() as db:
        state.store.delete_message(db, message_id)
        state.store.log(db, message, "CANCELED")
    return True


# -- URL groups ----------------------------------------------------------------------------------
async def list_topics(request: Request, state: ServerState) -> Any:
    return list(state.topics.values())


async def get_topic(request: Request, state: ServerState) -> Any:
    topic = state.topics.get(request.path_params["name"])
    if topic is None:
        raise ApiError(404, "url group not found")
    return topic


async def delete_topic(request: Request, state: ServerState) -> Response:
    with state.store.transaction() as db:
        state.store.delete_topic(db, request.path_params["name"])
    state.topics.pop(request.path_params["name"], None)
    return Response(status_code=200)


async def upsert_endpoints(request: Request, state: ServerState) -> Response:
    name = request.path_params["name"]
    if not _NAME.match(name):
        raise ApiError(400, "invalid url group name")
    endpoints = _endpoints(await _read_body(request, state.max_body_bytes))
    topic = state.topics.get(name) or {
        "name": name,
        "endpoints": [],
        "createdAt": now_ms(),
        "updatedAt": now_ms(),
    }
    by_url = {endpoint["url"]: endpoint for endpoint in topic["endpoints"]}
    for endpoint in endpoints:
        _check_url(endpoint.get("url", ""))
        by_url[endpoint["url"]] = {key: endpoint[key] for key in ("url", "name") if key in endpoint}
    topic.update(endpoints=list(by_url.values()), updatedAt=now_ms())
    with state.store.transaction() as db:
        state.store.save_topic(db, topic)
    state.topics[name] = topic
    return Response(status_code=200)


async def remove_endpoints(request: Request, state: ServerState) -> Response:
    topic = state.topics.get(request.path_params["name"])
    if topic is None:
        raise ApiError(404, "url group not found")
    removals = _endpoints(await _read_body(request, state.max_body_bytes))
    urls = {e.get("url") for e in removals} - {None}
    names = {e.get("name") for e in removals} - {None}
    topic["endpoints"] = [
        e for e in topic["endpoints"] if e["url"] not in urls and e.get("name") not in names
    ]
    topic["updatedAt"] = now_ms()
    with state.store.transaction() as db:
        state.store.save_topic(db, topic)
    return Response(status_code=200)


def _endpoints(body: bytes) -> list[dict[str, str]]:
    document = _json(body)
    endpoints = document.get("endpoints") if isinstance(document, dict) else None
    if not isinstance(endpoints, list) or not all(isinstance(e, dict) for e in endpoints):
        raise ApiError(400, 'body must be {"endpoints": [{"url": ..., "name": ...}]}')
    return endpoints


# -- dead-letter queue ---------------------------------------------------------------------------
def _matches(letter: DeadLetter, params: Any) -> bool:
    message = letter.message
    checks = {
        "messageId": message.message_id,
        "url": message.url,
        "topicName": message.topic_name,
        "label": message.label,
        "responseStatus": str(letter.response_status),
        "callerIp": message.caller_ip,
    }
    return all(params.get(key) in (None, value) for key, value in checks.items())


async def list_dlq(request: Request, state: ServerState) -> Any:
    params = request.query_params
    count = min(int(params.get("count", "100") or 100), 1000)
    cursor, found = params.get("cursor"), []
    while len(found) < count:
        page = state.store.dead_letters(after=cursor, limit=count * 2)
        if not page:
            cursor = None
            break
        for letter in page:
            cursor = letter.dlq_id
            if _matches(letter, params):
                found.append(letter)
                if len(found) == count:
                    break
    result: dict[str, Any] = {"messages": [letter.api_json() for letter in found]}
    if cursor is not None and state.store.dead_letters(after=cursor, limit=1):
        result["cursor"] = cursor
    return result


async def get_dlq(request: Request, state: ServerState) -> Any:
    letter = state.store.dead_letter(request.path_params["dlq_id"])
    if letter is None:
        raise ApiError(404, "dlq message not found")
    return letter.api_json()


async def delete_dlq(request: Request, state: ServerState) -> Response:
    with state.store.transaction() as db:
        if not state.store.delete_dead_letter(db, request.path_params["dlq_id"]):
            raise ApiError(404, "dlq message not found")
    return Response(status_code=200)


async def delete_dlq_many(request: Request, state: ServerState) -> Any:
    body = _json(await _read_body(request, state.max_body_bytes)) or {}
    ids = (body.get("dlqIds") if isinstance(body, dict) else None) or request.query_params.getlist(
        "dlqIds"
    )
    with state.store.transaction() as db:
        deleted = sum(state.store.delete_dead_letter(db, str(dlq_id)) for dlq_id in ids)
    return {"deleted": deleted}


async def retry_dlq(request: Request, state: ServerState) -> Response:
    message_id = _requeue(state, request.path_params["dlq_id"], request.headers)
    return JSONResponse({"messageId": message_id}, status_code=201)


async def retry_dlq_many(request: Request, state: ServerState) -> Any:
    ids = request.query_params.getlist("dlqIds")
    return {"responses": [{"messageId": _requeue(state, i, request.headers)} for i in ids]}


def _requeue(state: ServerState, dlq_id: str, headers: Any) -> str:
    """Publish the dead letter again as a new message and remove it from the DLQ."""
    letter = state.store.dead_letter(dlq_id)
    if letter is None:
        raise ApiError(404, f"dlq message {dlq_id} not found")
    original = letter.message
    retries = original.max_retries
    if "upstash-retries" in headers:
        retries = int(headers["upstash-retries"])
    message = Message(
        message_id=new_message_id(),
        url=original.url,
        method=original.method,
        body=original.body,
        headers=original.headers,
        max_retries=retries,
        created_at_ms=now_ms(),
        not_before_ms=now_ms(),
        topic_name=original.topic_name,
        endpoint_name=original.endpoint_name,
        retry_delay=original.retry_delay,
        timeout_seconds=original.timeout_seconds,
        label=original.label,
        redact_body=original.redact_body,
        caller_ip=original.caller_ip,
    )
    with state.store.transaction() as db:
        state.store.delete_dead_letter(db, dlq_id)
        state.store.save_messages(db, [message])
    state.dispatcher.schedule(message)
    return message.message_id


# -- signing keys and logs -----------------------------------------------------------------------
async def get_keys(request: Request, state: ServerState) -> Any:
    return {"current": state.keys[0], "next": state.keys[1]}


async def rotate_keys(request: Request, state: ServerState) -> Any:
    state.keys[:] = [state.keys[1], "sig_" + secrets.token_urlsafe(21)]
    return {"current": state.keys[0], "next": state.keys[1]}


_EVENT_FILTERS = {
    "messageId": "message_id",
    "state": "state",
    "url": "url",
    "topicName": "topic_name",
}


async def list_events(request: Request, state: ServerState) -> Any:
    rows, cursor = _event_rows(request, state)
    return {"events": rows, **({"cursor": cursor} if cursor else {})}


async def list_logs(request: Request, state: ServerState) -> Any:
    rows, cursor = _event_rows(request, state)
    return {"logs": rows, **({"cursor": cursor} if cursor else {})}


def _event_rows(request: Request, state: ServerState) -> tuple[list[dict[str, Any]], str | None]:
    params = request.query_params
    count = min(int(params.get("count", "1000") or 1000), 1000)
    filters = {column: params[key] for key, column in _EVENT_FILTERS.items() if key in params}
    cursor = params.get("cursor")
    rows = state.store.events(filters, before=int(cursor) if cursor else None, limit=count + 1)
    events = []
    for _row_id, time_ms, message_id, event_state, url, topic, error, status, next_ms in rows[
        :count
    ]:
        event: dict[str, Any] = {
            "time": time_ms,
            "messageId": message_id,
            "state": event_state,
            "url": url,
        }
        optional = {
            "topicName": topic,
            "error": error,
            "responseStatus": status,
            "nextDeliveryTime": next_ms,
        }
        event.update({k: v for k, v in optional.items() if v is not None})
        events.append(event)
    next_cursor = str(rows[count - 1][0]) if len(rows) > count else None
    return events, next_cursor
