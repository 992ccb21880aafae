"""Messages (get, cancel), the dead-letter queue and the event log (reference §1.1, §1.5)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from data_pipeline.devtools.qstash_server.drafts import ApiError, parse_retries
from data_pipeline.devtools.qstash_server.http_io import count_param, parse_json, read_body
from data_pipeline.devtools.qstash_server.model import (
    DeadLetter,
    new_message_id,
    next_sequence,
    now_ms,
)

if TYPE_CHECKING:
    from data_pipeline.devtools.qstash_server.app import ServerState


# -- messages ------------------------------------------------------------------------------------
async def get_message(request: Request, state: ServerState) -> Any:
    message = state.dispatcher.message(request.path_params["message_id"])
    if message is None:
        raise ApiError(404, "message not found")
    return message.api_json()


async def cancel_message(request: Request, state: ServerState) -> Response:
    if not state.dispatcher.cancel(request.path_params["message_id"]):
        raise ApiError(404, "message not found")
    return Response(status_code=202)


async def cancel_messages(request: Request, state: ServerState) -> Any:
    """By ids (a JSON body from the Python SDK, query parameters from JS), or all."""
    body = parse_json(await read_body(request, state.max_body_bytes)) or {}
    ids = body.get("messageIds") if isinstance(body, dict) else None
    ids = ids or request.query_params.getlist("messageIds") or None
    targets = ids if ids is not None else [m.message_id for m in state.dispatcher.all_messages()]
    return {"cancelled": sum(state.dispatcher.cancel(str(message_id)) for message_id in targets)}


# -- dead-letter queue ---------------------------------------------------------------------------
def _matches(letter: DeadLetter, params: Any) -> bool:
    message = letter.message
    checks = {
        "messageId": message.message_id,
        "url": message.url,
        "topicName": message.topic_name,
        "queueName": message.queue_name,
        "scheduleId": message.schedule_id,
        "label": message.label,
        "responseStatus": str(letter.response_status),
        "callerIp": message.caller_ip,
    }
    if not all(params.get(key) in (None, value) for key, value in checks.items()):
        return False
    since, until = _int_param(params, "fromDate"), _int_param(params, "toDate")
    return (since is None or letter.failed_at_ms >= since) and (
        until is None or letter.failed_at_ms <= until
    )


def _int_param(params: Any, name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise ApiError(400, f"{name} must be a Unix time in milliseconds")
    return int(raw)


async def list_dlq(request: Request, state: ServerState) -> Any:
    params = request.query_params
    count = count_param(request, 100, 1000)
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
    body = parse_json(await read_body(request, state.max_body_bytes)) or {}
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
    """Publish the dead letter again as a new message (same destination, queue, flow control,
    callbacks and label) and remove it from the DLQ; `Upstash-Retries` overrides."""
    letter = state.store.dead_letter(dlq_id)
    if letter is None:
        raise ApiError(404, f"dlq message {dlq_id} not found")
    original = letter.message
    message = dataclasses.replace(
        original,
        message_id=new_message_id(),
        retried=0,
        max_retries=parse_retries(headers.get("upstash-retries", str(original.max_retries))),
        created_at_ms=now_ms(),
        not_before_ms=now_ms(),
        holds_queue=None,
        sequence=next_sequence(),
    )
    if message.queue_name:
        state.dispatcher.lane(message.queue_name)
    with state.store.transaction() as db:
        state.store.delete_dead_letter(db, dlq_id)
        state.store.save_messages(db, [message])
    state.dispatcher.submit([message])
    return message.message_id


# -- event log -----------------------------------------------------------------------------------
_EVENT_FILTERS = {
    "messageId": "message_id",
    "url": "url",
    "topicName": "topic_name",
    "queueName": "queue_name",
    "scheduleId": "schedule_id",
    "label": "label",
}
# A message-level filter: any state of a message still being worked on (reference §1.5).
_STATE_GROUPS = {"IN_PROGRESS": ("ACTIVE", "RETRY", "ERROR")}


async def list_events(request: Request, state: ServerState) -> Any:
    rows, cursor = _event_rows(request, state)
    return {"events": rows, **({"cursor": cursor} if cursor else {})}


async def list_logs(request: Request, state: ServerState) -> Any:
    rows, cursor = _event_rows(request, state)
    return {"logs": rows, **({"cursor": cursor} if cursor else {})}


def _event_rows(request: Request, state: ServerState) -> tuple[list[dict[str, Any]], str | None]:
    params = request.query_params
    count = count_param(request, 1000, 1000)
    filters: dict[str, Any] = {
        column: params[key] for key, column in _EVENT_FILTERS.items() if key in params
    }
    if params.getlist("messageIds"):
        filters["message_id"] = tuple(params.getlist("messageIds"))
    if "state" in params:
        filters["state"] = _STATE_GROUPS.get(params["state"], params["state"])
    since, until = _int_param(params, "fromDate"), _int_param(params, "toDate")
    if since is not None or until is not None:
        filters["time_ms"] = (since or 0, until or 2**62)
    cursor = params.get("cursor")
    if cursor is not None and not cursor.isdigit():
        raise ApiError(400, "invalid cursor")
    rows = state.store.events(filters, before=int(cursor) if cursor else None, limit=count + 1)
    events = []
    for event, message in rows[:count]:
        entry: dict[str, Any] = message.log_details() if message is not None else {}
        entry.update(
            time=event["time_ms"],
            messageId=event["message_id"],
            state=event["state"],
            url=event["url"],
        )
        optional = {
            "topicName": event["topic_name"],
            "error": event["error"],
            "responseStatus": event["response_status"],
            "nextDeliveryTime": event["next_delivery_ms"],
            "label": event["label"],
            "queueName": event["queue_name"],
            "scheduleId": event["schedule_id"],
        }
        entry.update({k: v for k, v in optional.items() if v is not None})
        events.append(entry)
    next_cursor = str(rows[count - 1][0]["id"]) if len(rows) > count else None
    return events, next_cursor
