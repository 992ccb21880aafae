"""The vector index port: one namespace per merchant, stable ids, metadata stored with vectors.

Two implementations behind one contract: Pinecone (production) and a table in the warehouse
searched by cosine distance (local mode). Filters use the subset of Pinecone's filter language
that `domain.rag.validate_filter` accepts: {field: {"$op": value}}, ANDed.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from data_pipeline.domain.rag import Match

FETCH_BATCH = 100  # Pinecone accepts up to 1,000 ids per fetch; URLs stay short at 100
UPSERT_BATCH = 100  # Pinecone's recommended upsert batch (2 MB request cap)


@dataclass(frozen=True, slots=True)
class VectorRecord:
    doc_id: str
    values: list[float]
    metadata: dict[str, Any]


def namespace_for(merchant_id: int) -> str:
    return f"merchant-{merchant_id}"


class VectorIndex(abc.ABC):
    @abc.abstractmethod
    async def upsert(self, namespace: str, records: Sequence[VectorRecord]) -> None: ...

    @abc.abstractmethod
    async def delete(self, namespace: str, doc_ids: Sequence[str]) -> None: ...

    @abc.abstractmethod
    async def fetch_metadata(
        self, namespace: str, doc_ids: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """Stored metadata of the ids that exist (absent ids are simply missing)."""

    @abc.abstractmethod
    async def query(
        self,
        namespace: str,
        vector: Sequence[float],
        top_k: int,
        filter: dict[str, dict[str, Any]] | None = None,
    ) -> list[Match]:
        """Nearest vectors by cosine similarity (higher is closer), with metadata."""

    @abc.abstractmethod
    async def count(self, namespace: str) -> int: ...

    @abc.abstractmethod
    async def close(self) -> None: ...
