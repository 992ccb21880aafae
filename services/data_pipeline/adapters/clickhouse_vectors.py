"""Local mode's vector index: a table in the warehouse, searched by cosine distance.

Each write is a row with a nanosecond sequence; the newest row of a document wins
(ReplacingMergeTree + FINAL) and a tombstone row deletes it, so upserts replace vectors under
the same id exactly as Pinecone does. Exact search over a merchant's namespace is fast enough
for local stores (see docs/benchmarks.md); production uses Pinecone.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse
from data_pipeline.adapters.vector_index import FETCH_BATCH, VectorIndex, VectorRecord
from data_pipeline.domain.rag import Match

_TABLE = "rag_vectors"
_COLUMNS = ("namespace", "doc_id", "seq", "is_deleted", "embedding", "metadata")
_FIELD = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_OPERATORS = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


class ClickHouseVectorIndex(VectorIndex):
    def __init__(self, warehouse: ClickHouseWarehouse) -> None:
        self._warehouse = warehouse
        self._db = warehouse.database
        self._write_lock = threading.Lock()  # one insert context per table client
        self._last_seq = 0

    def _next_seq(self) -> int:
        # Strictly increasing within the process, and time-ordered across processes.
        self._last_seq = max(self._last_seq + 1, time.time_ns())
        return self._last_seq

    async def upsert(self, namespace: str, records: Sequence[VectorRecord]) -> None:
        rows = [
            [namespace, r.doc_id, self._next_seq(), 0, r.values, _dumps(r.metadata)]
            for r in records
        ]
        await asyncio.to_thread(self._insert, rows)

    async def delete(self, namespace: str, doc_ids: Sequence[str]) -> None:
        rows = [[namespace, doc_id, self._next_seq(), 1, [], "{}"] for doc_id in doc_ids]
        await asyncio.to_thread(self._insert, rows)

    def _insert(self, rows: list[list[Any]]) -> None:
        if rows:
            with self._write_lock:
                self._warehouse.insert_rows(_TABLE, _COLUMNS, rows)

    async def fetch_metadata(
        self, namespace: str, doc_ids: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(doc_ids), FETCH_BATCH):
            chunk = list(doc_ids[start : start + FETCH_BATCH])
            result = await asyncio.to_thread(
                self._warehouse.query,
                f"SELECT doc_id, metadata FROM {self._db}.{_TABLE} FINAL "  # noqa: S608
                "WHERE namespace = {ns:String} AND doc_id IN {ids:Array(String)} "
                "AND is_deleted = 0",
                {"ns": namespace, "ids": chunk},
            )
            found.update({doc_id: json.loads(metadata) for doc_id, metadata in result.rows})
        return found

    async def query(
        self,
        namespace: str,
        vector: Sequence[float],
        top_k: int,
        filter: dict[str, dict[str, Any]] | None = None,
    ) -> list[Match]:
        where, parameters = _where(filter or {})
        parameters.update({"ns": namespace, "q": [float(v) for v in vector], "k": top_k})
        result = await asyncio.to_thread(
            self._warehouse.query,
            "SELECT doc_id, 1 - cosineDistance(embedding, {q:Array(Float32)}) AS score, "  # noqa: S608
            f"metadata FROM {self._db}.{_TABLE} FINAL "
            f"WHERE namespace = {{ns:String}} AND is_deleted = 0{where} "
            "ORDER BY score DESC, doc_id LIMIT {k:UInt32}",
            parameters,
        )
        return [
            Match(doc_id, float(score), json.loads(meta)) for doc_id, score, meta in result.rows
        ]

    async def count(self, namespace: str) -> int:
        result = await asyncio.to_thread(
            self._warehouse.query,
            f"SELECT count() FROM {self._db}.{_TABLE} FINAL "  # noqa: S608
            "WHERE namespace = {ns:String} AND is_deleted = 0",
            {"ns": namespace},
        )
        return int(result.rows[0][0])

    async def close(self) -> None:
        return None  # the warehouse owns the connection


def _dumps(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, ensure_ascii=False, separators=(",", ":"), default=str)


def _where(spec: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Pinecone-style filters as SQL over the JSON metadata; values are always bound."""
    clauses: list[str] = []
    parameters: dict[str, Any] = {}
    for field, operations in spec.items():
        if not _FIELD.match(field):
            raise ValueError(f"bad filter field {field!r}")
        for operator, value in operations.items():
            name = f"f{len(parameters)}"
            sample = value[0] if isinstance(value, list) and value else value
            numeric = isinstance(sample, int | float) and not isinstance(sample, bool)
            kind = "Float64" if numeric else "String"
            extract = f"JSONExtract(metadata, '{field}', 'Nullable({kind})')"
            if operator in _OPERATORS:
                clauses.append(f"{extract} {_OPERATORS[operator]} {{{name}:{kind}}}")
            elif operator in ("$in", "$nin"):
                negate = "NOT " if operator == "$nin" else ""
                clauses.append(f"{extract} {negate}IN {{{name}:Array({kind})}}")
            else:
                raise ValueError(f"bad filter operator {operator!r}")
            parameters[name] = value
    return "".join(f" AND {c}" for c in clauses), parameters
