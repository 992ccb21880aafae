"""Pinecone through the official `pinecone` SDK (async data-plane client).

The index host comes from PINECONE_HOST (the Pulumi program exports it) or, when only the index
name is configured, from one describe-index lookup on first use. The SDK retries 429 and 5xx
itself (with Retry-After); what is still failing afterwards becomes TransientError.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog
from pinecone import AsyncIndex, AsyncPinecone
from pinecone.errors import PineconeError

from data_pipeline.adapters.vector_index import FETCH_BATCH, UPSERT_BATCH, VectorIndex, VectorRecord
from data_pipeline.domain.rag import Match
from data_pipeline.errors import PermanentError, TransientError

log = structlog.get_logger("vectors")
# A request Pinecone will never accept: the message is poison (dead-lettered with the reason).
_INVALID_REQUEST = (400, 422)
# The key, project or index is wrong, rotated, suspended or gone (401/402/403/404, docs:
# https://docs.pinecone.io/reference/api/errors). Nothing is wrong with the message: it is an
# outage of our configuration, so it backs off and alerts instead of dead-lettering every index
# update until someone notices.
_CONFIGURATION = (401, 402, 403, 404)
CONFIGURATION_RETRY_SECONDS = 300


class VectorIndexMisconfigured(TransientError):
    """Pinecone refused our credentials or does not know the index: retried after a pause."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=CONFIGURATION_RETRY_SECONDS)


class PineconeIndex(VectorIndex):
    def __init__(
        self, *, api_key: str, index_name: str | None, host: str | None, timeout: float = 10.0
    ) -> None:
        self._api_key = api_key
        self._name = index_name
        self._host = host
        self._timeout = timeout
        self._index: AsyncIndex | None = None
        self._lock = asyncio.Lock()

    async def _data_plane(self) -> AsyncIndex:
        if self._index is None:
            async with self._lock:
                if self._index is None:
                    host = self._host or await self._resolve_host()
                    self._index = AsyncIndex(
                        host=host, api_key=self._api_key, timeout=self._timeout
                    )
        return self._index

    async def _resolve_host(self) -> str:
        assert self._name is not None
        async with AsyncPinecone(api_key=self._api_key) as control:
            description = await _guard("describe index", control.indexes.describe(self._name))
        return str(description.host)

    async def upsert(self, namespace: str, records: Sequence[VectorRecord]) -> None:
        index = await self._data_plane()
        for start in range(0, len(records), UPSERT_BATCH):
            chunk = records[start : start + UPSERT_BATCH]
            vectors = [{"id": r.doc_id, "values": r.values, "metadata": r.metadata} for r in chunk]
            await _guard("upsert", index.upsert(vectors=vectors, namespace=namespace))

    async def delete(self, namespace: str, doc_ids: Sequence[str]) -> None:
        index = await self._data_plane()
        for start in range(0, len(doc_ids), UPSERT_BATCH):
            chunk = list(doc_ids[start : start + UPSERT_BATCH])
            # Serverless answers 404 for a delete in a namespace that holds nothing yet
            # (pinecone-io/pinecone-ts-client#324): nothing to delete is what we wanted.
            await _guard("delete", index.delete(ids=chunk, namespace=namespace), missing_ok=True)

    async def fetch_metadata(
        self, namespace: str, doc_ids: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        index = await self._data_plane()
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(doc_ids), FETCH_BATCH):
            chunk = list(doc_ids[start : start + FETCH_BATCH])
            response = await _guard("fetch", index.fetch(ids=chunk, namespace=namespace))
            for doc_id, vector in response.vectors.items():
                found[doc_id] = dict(vector.metadata or {})
        return found

    async def query(
        self,
        namespace: str,
        vector: Sequence[float],
        top_k: int,
        filter: dict[str, dict[str, Any]] | None = None,
    ) -> list[Match]:
        index = await self._data_plane()
        response = await _guard(
            "query",
            index.query(
                top_k=top_k,
                vector=list(vector),
                namespace=namespace,
                filter=filter or None,
                include_metadata=True,
            ),
        )
        return [Match(m.id, float(m.score), dict(m.metadata or {})) for m in response.matches]

    async def count(self, namespace: str) -> int:
        index = await self._data_plane()
        stats = await _guard("stats", index.describe_index_stats())
        summary = (stats.namespaces or {}).get(namespace)
        return int(summary.vector_count) if summary is not None else 0

    async def close(self) -> None:
        if self._index is not None:
            await self._index.close()


async def _guard(what: str, call: Any, *, missing_ok: bool = False) -> Any:
    """The call's answer, or our error for Pinecone's (`missing_ok`: a 404 answers None)."""
    try:
        return await call
    except PineconeError as error:
        status = getattr(error, "status_code", None) or getattr(error, "status", None)
        if missing_ok and status == 404:
            return None
        if status in _INVALID_REQUEST:
            raise PermanentError(f"pinecone {what} rejected ({status}): {error}"[:300]) from None
        if status in _CONFIGURATION:
            log.error("vector_index_misconfigured", operation=what, status=status)
            raise VectorIndexMisconfigured(
                f"pinecone {what} refused ({status}): check PINECONE_API_KEY and the index"
            ) from None
        raise TransientError(f"pinecone {what} failed: {error}"[:300]) from None
    except (OSError, TimeoutError) as error:
        raise TransientError(f"pinecone {what} failed: {type(error).__name__}") from None
