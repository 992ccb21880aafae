"""A local stand-in for mock.httpstatus.io, the external target of the qstash-py SDK tests.

`/<status>` answers with that status and the body `<status> <reason phrase>` (the SDK's DLQ
tests read `404 Not Found` back); `?sleep=<ms>` waits that long first. Any method.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

MAX_SLEEP_MS = 60_000


async def answer(request: Request) -> Response:
    raw = request.path_params["status"]
    try:
        status = HTTPStatus(int(raw))
    except ValueError:
        return PlainTextResponse(f"unknown status {raw[:10]}", status_code=400)
    sleep = request.query_params.get("sleep", "0")
    if sleep.isdigit():
        await asyncio.sleep(min(int(sleep), MAX_SLEEP_MS) / 1000)
    return PlainTextResponse(f"{status.value} {status.phrase}", status_code=status.value)


def create_app() -> Starlette:
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/{status}", answer, methods=methods)])
