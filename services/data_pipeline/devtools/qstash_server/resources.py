"""URL groups, queues, flow-control keys and signing keys (reference §1.1)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from data_pipeline.devtools.qstash_server.drafts import ApiError, check_name, check_url
from data_pipeline.devtools.qstash_server.http_io import parse_json, read_body
from data_pipeline.devtools.qstash_server.model import now_ms

if TYPE_CHECKING:
    from data_pipeline.devtools.qstash_server.app import ServerState
    from data_pipeline.devtools.qstash_server.gates import FlowGate

# Plan limit on queue parallelism (pay-as-you-go: 100; reference §5). Over it: 412.
MAX_QUEUE_PARALLELISM = 100


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
    name = check_name(request.path_params["name"], "url group name")
    endpoints = _endpoints(await read_body(request, state.max_body_bytes))
    topic = state.topics.get(name) or {
        "name": name,
        "endpoints": [],
        "createdAt": now_ms(),
        "updatedAt": now_ms(),
    }
    by_url = {endpoint["url"]: endpoint for endpoint in topic["endpoints"]}
    for endpoint in endpoints:
        check_url(endpoint.get("url", ""))
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
    removals = _endpoints(await read_body(request, state.max_body_bytes))
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
    document = parse_json(body)
    endpoints = document.get("endpoints") if isinstance(document, dict) else None
    if not isinstance(endpoints, list) or not all(isinstance(e, dict) for e in endpoints):
        raise ApiError(400, 'body must be {"endpoints": [{"url": ..., "name": ...}]}')
    return endpoints


# -- queues --------------------------------------------------------------------------------------
async def upsert_queue(request: Request, state: ServerState) -> Response:
    document = parse_json(await read_body(request, state.max_body_bytes))
    if not isinstance(document, dict) or not isinstance(document.get("queueName"), str):
        raise ApiError(400, 'body must be {"queueName": ..., "parallelism": n, "paused": bool}')
    name = check_name(document["queueName"], "queue name")
    parallelism = document.get("parallelism", 1)
    paused = document.get("paused", False)
    if not isinstance(parallelism, int) or isinstance(parallelism, bool) or parallelism < 1:
        raise ApiError(400, "parallelism must be an integer greater than 0")
    if parallelism > MAX_QUEUE_PARALLELISM:
        raise ApiError(412, f"parallelism is limited to {MAX_QUEUE_PARALLELISM} on this plan")
    if not isinstance(paused, bool):
        raise ApiError(400, "paused must be a boolean")
    state.dispatcher.upsert_queue(name, parallelism, paused)
    return Response(status_code=200)


async def list_queues(request: Request, state: ServerState) -> Any:
    return [lane.queue.api_json(lane.lag) for lane in state.dispatcher.lanes.values()]


async def get_queue(request: Request, state: ServerState) -> Any:
    name = check_name(request.path_params["name"], "queue name")
    lane = state.dispatcher.lanes.get(name)
    if lane is None:
        raise ApiError(404, f"queue {name} not found")
    return lane.queue.api_json(lane.lag)


async def delete_queue(request: Request, state: ServerState) -> Response:
    """Its pending messages are cancelled with it."""
    state.dispatcher.delete_queue(request.path_params["name"])
    return Response(status_code=200)


async def pause_queue(request: Request, state: ServerState) -> Response:
    return _set_paused(request, state, paused=True)


async def resume_queue(request: Request, state: ServerState) -> Response:
    return _set_paused(request, state, paused=False)


def _set_paused(request: Request, state: ServerState, *, paused: bool) -> Response:
    if not state.dispatcher.set_queue_paused(request.path_params["name"], paused):
        raise ApiError(404, f"queue {request.path_params['name']} not found")
    return Response(status_code=200)


# -- flow control --------------------------------------------------------------------------------
async def list_flow_keys(request: Request, state: ServerState) -> Any:
    search = request.query_params.get("search", "")
    now = now_ms()
    return [
        gate.api_json(now) for key, gate in sorted(state.dispatcher.gates.items()) if search in key
    ]


async def get_flow_key(request: Request, state: ServerState) -> Any:
    return _known_gate(request, state).api_json(now_ms())


def _known_gate(request: Request, state: ServerState) -> FlowGate:
    gate = state.dispatcher.gates.get(request.path_params["key"])
    if gate is None:
        raise ApiError(404, f"flow control key {request.path_params['key']} not found")
    return gate


async def flow_key_action(request: Request, state: ServerState) -> Response:
    """pause, resume, pin, unpin or resetRate (api-reference/flow-control/*)."""
    action = request.path_params["action"]
    gate = _known_gate(request, state)
    params = request.query_params
    if action == "pause":
        gate.paused = True
    elif action == "resume":
        gate.paused = False
    elif action == "pin":
        gate.pin(*(_positive(params, name) for name in ("parallelism", "rate", "period")))
    elif action == "unpin":
        gate.unpin(_flag(params, "parallelism"), _flag(params, "rate"))
    elif action == "resetRate":
        gate.reset_rate(now_ms())
    else:
        raise ApiError(404, f"unknown flow control action {action[:40]!r}")
    state.dispatcher.changed_gate(gate)
    return Response(status_code=200)


def _positive(params: Any, name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, f"{name} must be a positive integer")
    return int(raw)


def _flag(params: Any, name: str) -> bool:
    raw = params.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise ApiError(400, f"{name} must be true or false")
    return raw == "true"


async def global_parallelism(request: Request, state: ServerState) -> Any:
    return {
        "parallelismMax": state.dispatcher.concurrency,
        "parallelismCount": state.dispatcher.in_flight,
    }


# -- signing keys --------------------------------------------------------------------------------
async def get_keys(request: Request, state: ServerState) -> Any:
    return {"current": state.keys[0], "next": state.keys[1]}


async def rotate_keys(request: Request, state: ServerState) -> Any:
    state.keys[:] = [state.keys[1], "sig_" + secrets.token_urlsafe(21)]
    return {"current": state.keys[0], "next": state.keys[1]}
