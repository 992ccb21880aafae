"""Publish, enqueue and batch: drafts become durable messages (reference §1.1, §1.4).

Every accepted message is committed before the answer; duplicates (same deduplication id and
destination within 10 minutes) are answered 202 with the first message's id and
`deduplicated: true`. A URL group fans out to one message per endpoint and answers a JSON array.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from data_pipeline.devtools.qstash_server.drafts import ApiError, Draft, parse_draft
from data_pipeline.devtools.qstash_server.http_io import (
    caller_ip,
    destination,
    header_pairs,
    parse_json,
    raw_tail,
    read_body,
)
from data_pipeline.devtools.qstash_server.model import Message, new_message_id, now_ms

if TYPE_CHECKING:
    from data_pipeline.devtools.qstash_server.app import ServerState

DEDUP_WINDOW_MS = 10 * 60 * 1000
Outcome = tuple[Any, bool] | ApiError  # (response body, deduplicated) or that draft's error


async def publish(request: Request, state: ServerState) -> Response:
    pairs = header_pairs(request)
    if any(name.lower() == "upstash-cron" for name, _ in pairs):
        # The older way to create a schedule: publish with an Upstash-Cron header.
        from data_pipeline.devtools.qstash_server.schedules import create

        return await create(request, state)
    target = destination(raw_tail(request, "/v2/publish/"))
    body = await read_body(request, state.max_body_bytes)
    draft = parse_draft(target, body, pairs, caller_ip(request))
    return _answer(accept(state, [draft])[0])


async def enqueue(request: Request, state: ServerState) -> Response:
    queue, _, rest = raw_tail(request, "/v2/enqueue/").partition("/")
    if not rest:
        raise ApiError(400, "use /v2/enqueue/{queue}/{destination}")
    body = await read_body(request, state.max_body_bytes)
    draft = parse_draft(
        destination(rest), body, header_pairs(request), caller_ip(request), queue_name=queue
    )
    return _answer(accept(state, [draft])[0])


def _answer(outcome: Outcome) -> Response:
    if isinstance(outcome, ApiError):
        raise outcome
    result, duplicate = outcome
    return JSONResponse(result, status_code=202 if duplicate else 200)


async def batch(request: Request, state: ServerState) -> Any:
    """One entry's error is reported in its place; the other entries are still published."""
    entries = parse_json(await read_body(request, state.max_body_bytes))
    if not isinstance(entries, list):
        raise ApiError(400, "batch body must be a JSON array")
    drafts: list[Draft | ApiError] = []
    for entry in entries:
        try:
            drafts.append(_batch_draft(entry, caller_ip(request)))
        except ApiError as error:
            drafts.append(error)
    accepted = iter(accept(state, [d for d in drafts if isinstance(d, Draft)]))
    results: list[Any] = []
    for draft in drafts:
        outcome = draft if isinstance(draft, ApiError) else next(accepted)
        results.append({"error": str(outcome)} if isinstance(outcome, ApiError) else outcome[0])
    return results


def _batch_draft(entry: Any, caller: str | None) -> Draft:
    if not isinstance(entry, dict) or not isinstance(entry.get("destination"), str):
        raise ApiError(400, "each batch entry needs a destination")
    headers = entry.get("headers") or {}
    body = entry.get("body") or ""
    queue = entry.get("queue")  # the Python SDK always writes "queue": null
    if not isinstance(headers, dict) or not isinstance(body, str):
        raise ApiError(400, "batch entry headers must be an object and body a string")
    if queue is not None and not isinstance(queue, str):
        raise ApiError(400, "batch entry queue must be a string")
    pairs = [(str(k), str(v)) for k, v in headers.items()]
    return parse_draft(entry["destination"], body.encode(), pairs, caller, queue_name=queue)


def accept(state: ServerState, drafts: list[Draft]) -> list[Outcome]:
    """Deduplicate, fan out, persist in one transaction, then hand over for delivery."""
    for draft in drafts:
        if draft.queue_name:  # enqueueing to a missing queue creates it
            state.dispatcher.lane(draft.queue_name)
    outcomes: list[Outcome] = []
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
    state.dispatcher.submit(accepted)
    return outcomes


def _accept_one(
    db: Any, draft: Draft, state: ServerState
) -> tuple[tuple[Any, bool], list[Message]]:
    targets = _targets(draft, state)
    scope_key = f"{draft.destination}\n{draft.dedup_id}" if draft.dedup_id else None
    if scope_key is not None:
        previous = state.store.dedup_lookup(db, scope_key)
        if previous is not None:
            return (_mark_duplicate(previous), True), []
    created = now_ms()
    messages = [
        Message(
            message_id=new_message_id(),
            url=url,
            method=draft.method,
            body=draft.body,
            headers=draft.headers,
            max_retries=draft.retries,
            created_at_ms=created,
            not_before_ms=draft.not_before_ms,
            topic_name=None if draft.is_url else draft.destination,
            endpoint_name=name,
            retry_delay=draft.retry_delay,
            timeout_seconds=draft.timeout_seconds,
            label=draft.label,
            redact_body=draft.redact_body,
            caller_ip=draft.caller_ip,
            queue_name=draft.queue_name,
            schedule_id=draft.schedule_id,
            flow_control=draft.flow_control,
            callback=draft.callback,
            failure_callback=draft.failure_callback,
            callback_options=draft.callback_options,
            failure_callback_options=draft.failure_callback_options,
        )
        for url, name in targets
    ]
    state.store.save_messages(db, messages)
    result: Any = (
        {"messageId": messages[0].message_id}
        if draft.is_url
        else [{"messageId": m.message_id, "url": m.url} for m in messages]
    )
    if scope_key is not None:
        state.store.dedup_remember(db, scope_key, result, DEDUP_WINDOW_MS)
    return (result, False), messages


def _mark_duplicate(previous: Any) -> Any:
    if isinstance(previous, list):
        return [{**entry, "deduplicated": True} for entry in previous]
    return {**previous, "deduplicated": True}


def _targets(draft: Draft, state: ServerState) -> list[tuple[str, str | None]]:
    if draft.is_url:
        return [(draft.destination, None)]
    topic = state.topics.get(draft.destination)
    if topic is None:
        raise ApiError(404, f"url group {draft.destination} not found")
    if not topic["endpoints"]:
        raise ApiError(400, f"url group {draft.destination} has no endpoints")
    return [(endpoint["url"], endpoint.get("name")) for endpoint in topic["endpoints"]]
