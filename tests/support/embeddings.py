"""The local OpenAI-compatible embeddings server (real multilingual-e5-small) on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

import httpx
from data_pipeline.devtools.embeddings_server.app import (
    MODEL_NAME,
    EmbeddingsServerState,
    Encoder,
    create_embeddings_app,
    load_encoder,
)
from data_pipeline.devtools.serving import RunningServer, start_server

EMBEDDINGS_KEY = "test-embeddings-key"


@cache
def shared_encoder() -> Encoder:
    return load_encoder()  # loaded once per test process (~0.2 s, 90 MB)


@asynccontextmanager
async def embeddings_server(
    api_key: str | None = EMBEDDINGS_KEY,
) -> AsyncIterator[tuple[RunningServer, EmbeddingsServerState]]:
    state = EmbeddingsServerState(encoder=shared_encoder(), api_key=api_key)
    server = await start_server(create_embeddings_app(state), "127.0.0.1", 0, lifespan="off")
    try:
        yield server, state
    finally:
        await server.stop()


def rag_settings(server_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "openai_base_url": f"{server_url}/v1",
        "openai_api_key": EMBEDDINGS_KEY,
        "embedding_model": MODEL_NAME,
        "embedding_dimensions": 384,
        "embedding_input_types": True,
        **extra,
    }


async def inject_fault(
    server_url: str, status: int, count: int = 1, retry_after: float | None = None
) -> None:
    async with httpx.AsyncClient() as http:
        spec = {"status": status, "count": count, "retry_after": retry_after}
        (await http.post(f"{server_url}/_dev/faults", json=spec)).raise_for_status()
