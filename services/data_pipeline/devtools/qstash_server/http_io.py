"""Reading QStash API requests: bounded bodies, JSON, raw destinations, header pairs."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request

from data_pipeline.devtools.qstash_server.drafts import ApiError, is_url


async def read_body(request: Request, limit: int) -> bytes:
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


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "body is not JSON") from None


def raw_tail(request: Request, prefix: str) -> str:
    """The raw path after `prefix`, plus the raw query string: the SDKs put destination URLs
    into the path unencoded, so the framework's decoded, normalised path would corrupt them
    (reference §1.2)."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    tail = raw_path.decode("latin-1").split(prefix, 1)[1]
    return tail + ("?" + request.url.query if request.url.query else "")


def destination(text: str) -> str:
    return text if is_url(text) else unquote(text)


def header_pairs(request: Request) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]


def caller_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def count_param(request: Request, default: int, maximum: int) -> int:
    raw = request.query_params.get("count") or str(default)
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, "count must be a positive integer")
    return min(int(raw), maximum)
