"""Helpers for RAG tests: wait for the embed step to drain, search through the HTTP API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from data_pipeline.devtools.embeddings_server.app import EmbeddingsServerState
from data_pipeline.devtools.salla_samples import encode

from tests.support.harness import API_KEY, Harness


@dataclass
class RagStack:
    harness: Harness
    embeddings_url: str
    embeddings: EmbeddingsServerState

    async def send_all(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            response = await self.harness.send(encode(event))
            assert response.status_code == 200, response.text

    async def drain(self, timeout: float = 60.0) -> None:
        """Every event settled and every queued message (embed steps included) delivered."""
        await self.harness.settle(timeout)

    async def search(self, merchant: int, query: str, **extra: Any) -> list[dict[str, Any]]:
        response = await self.harness.http.post(
            self.harness.url + "/api/rag/search",
            json={"merchantId": merchant, "query": query, **extra},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        assert response.status_code == 200, response.text
        matches: list[dict[str, Any]] = response.json()["matches"]
        return matches

    async def vectors(self, merchant: int) -> dict[str, dict[str, Any]]:
        """Every live vector of the merchant: doc id → stored metadata."""
        db = self.harness.settings.clickhouse_database
        rows = await self.harness.sql(
            f"SELECT doc_id, metadata FROM {db}.rag_vectors FINAL "
            f"WHERE namespace = 'merchant-{merchant}' AND is_deleted = 0"
        )

        return {doc_id: json.loads(meta) for doc_id, meta in rows}
