"""A local stand-in for the Pinecone data plane, written from Pinecone's REST API reference
(2025-10): the endpoints our adapter calls, with their request and response shapes, the
`Api-Key` header, metadata filters, and fault injection (429 + Retry-After, 5xx).

Cosine similarity over stored vectors; enough to test the adapter at its HTTP boundary, not
a vector database.

Freshness as Pinecone documents it for serverless indexes: writes are acknowledged before they
are readable, so a fetch or query right after an upsert or delete can answer the older state
("Pinecone is eventually consistent, so there can be a slight delay before upserted records
are available to query", https://docs.pinecone.io/reference/api/known-limitations).
`read_lag_seconds` holds each write back from reads for that long, in write order. A delete of
ids in a namespace that does not exist answers 404 (pinecone-io/pinecone-ts-client#324).
"""

from __future__ import annotations

import hmac
import math
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

API_KEY = "pc-test-key"
MAX_UPSERT = 1000
MAX_TOP_K = 10_000


@dataclass
class PineconeState:
    namespaces: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    faults: list[tuple[int, float | None]] = field(default_factory=list)
    dimension: int = 384
    read_lag_seconds: float = 0.0
    # Acknowledged writes not yet readable: (readable at, operation, namespace, payload).
    pending: list[tuple[float, str, str, Any]] = field(default_factory=list)

    def space(self, namespace: str) -> dict[str, dict[str, Any]]:
        """The namespace as reads see it now: writes older than the lag applied, in order."""
        now = time.monotonic()
        while self.pending and self.pending[0][0] <= now:
            _, operation, name, payload = self.pending.pop(0)
            self._apply(operation, name, payload)
        return self.namespaces.setdefault(namespace, {})

    def write(self, operation: str, namespace: str, payload: Any) -> None:
        if self.read_lag_seconds <= 0 and not self.pending:
            self._apply(operation, namespace, payload)
        else:
            readable = time.monotonic() + self.read_lag_seconds
            self.pending.append((readable, operation, namespace, payload))

    def known(self, namespace: str) -> bool:
        return namespace in self.namespaces or any(p[2] == namespace for p in self.pending)

    def _apply(self, operation: str, namespace: str, payload: Any) -> None:
        space = self.namespaces.setdefault(namespace, {})
        if operation == "upsert":
            space.update({record["id"]: record for record in payload})
        else:
            for doc_id in payload:
                space.pop(doc_id, None)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": status, "message": message, "details": []}, status, headers)


def matches_filter(metadata: dict[str, Any], spec: dict[str, Any]) -> bool:
    for name, condition in spec.items():
        if name == "$and":
            if not all(matches_filter(metadata, part) for part in condition):
                return False
            continue
        operations = condition if isinstance(condition, dict) else {"$eq": condition}
        value = metadata.get(name)
        for operator, expected in operations.items():
            if not _compare(operator, value, expected):
                return False
    return True


def _compare(operator: str, value: Any, expected: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    if operator == "$eq":
        return expected in values
    if operator == "$ne":
        return expected not in values
    if operator == "$in":
        return any(v in expected for v in values)
    if operator == "$nin":
        return not any(v in expected for v in values)
    if value is None or isinstance(value, str | list):
        return False
    return {
        "$gt": value > expected,
        "$gte": value >= expected,
        "$lt": value < expected,
        "$lte": value <= expected,
    }[operator]


def create_pinecone_app(state: PineconeState) -> Starlette:
    async def guard(request: Request) -> JSONResponse | None:
        if not hmac.compare_digest(request.headers.get("api-key", ""), API_KEY):
            return _error(401, "Invalid API Key")
        if not request.headers.get("x-pinecone-api-version"):
            return _error(400, "missing X-Pinecone-Api-Version")
        if state.faults:
            status, retry_after = state.faults.pop(0)
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
            return _error(status, "injected failure", headers)
        return None

    async def upsert(request: Request) -> JSONResponse:
        if (refused := await guard(request)) is not None:
            return refused
        body = await request.json()
        vectors = body.get("vectors", [])
        state.calls.append(("upsert", body))
        if not 0 < len(vectors) <= MAX_UPSERT:
            return _error(400, f"upsert takes 1..{MAX_UPSERT} vectors")
        records = []
        for vector in vectors:
            if len(vector["values"]) != state.dimension:
                return _error(400, f"Vector dimension {len(vector['values'])} does not match")
            records.append(
                {
                    "id": vector["id"],
                    "values": vector["values"],
                    "metadata": vector.get("metadata") or {},
                }
            )
        state.write("upsert", body.get("namespace", ""), records)
        return JSONResponse({"upsertedCount": len(vectors)})

    async def query(request: Request) -> JSONResponse:
        if (refused := await guard(request)) is not None:
            return refused
        body = await request.json()
        state.calls.append(("query", body))
        top_k = body.get("topK")
        if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            return _error(400, "topK must be 1..10000")
        query_vector = body["vector"]
        spec = body.get("filter") or {}
        scored = []
        for record in state.space(body.get("namespace", "")).values():
            if matches_filter(record["metadata"], spec):
                scored.append((_cosine(query_vector, record["values"]), record))
        scored.sort(key=lambda pair: -pair[0])
        matches = [
            {
                "id": record["id"],
                "score": score,
                "values": record["values"] if body.get("includeValues") else [],
                **({"metadata": record["metadata"]} if body.get("includeMetadata") else {}),
            }
            for score, record in scored[:top_k]
        ]
        return JSONResponse(
            {"matches": matches, "namespace": body.get("namespace", ""), "usage": {"readUnits": 5}}
        )

    async def fetch(request: Request) -> JSONResponse:
        if (refused := await guard(request)) is not None:
            return refused
        ids = request.query_params.getlist("ids")
        namespace = request.query_params.get("namespace", "")
        state.calls.append(("fetch", {"ids": ids, "namespace": namespace}))
        space = state.space(namespace)
        found = {i: space[i] for i in ids if i in space}
        return JSONResponse({"vectors": found, "namespace": namespace, "usage": {"readUnits": 1}})

    async def delete(request: Request) -> JSONResponse:
        if (refused := await guard(request)) is not None:
            return refused
        body = await request.json()
        state.calls.append(("delete", body))
        namespace = body.get("namespace", "")
        if not state.known(namespace):
            return _error(404, "Namespace not found")
        state.write("delete", namespace, list(body.get("ids", [])))
        return JSONResponse({})

    async def stats(request: Request) -> JSONResponse:
        if (refused := await guard(request)) is not None:
            return refused
        state.space("")  # apply what is due
        namespaces = {
            name: {"vectorCount": len(space)} for name, space in state.namespaces.items() if space
        }
        total = sum(n["vectorCount"] for n in namespaces.values())
        return JSONResponse(
            {
                "namespaces": namespaces,
                "dimension": state.dimension,
                "indexFullness": 0.0,
                "totalVectorCount": total,
            }
        )

    return Starlette(
        routes=[
            Route("/vectors/upsert", upsert, methods=["POST"]),
            Route("/query", query, methods=["POST"]),
            Route("/vectors/fetch", fetch, methods=["GET"]),
            Route("/vectors/delete", delete, methods=["POST"]),
            Route("/describe_index_stats", stats, methods=["POST", "GET"]),
        ]
    )


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    return dot / norm if norm else 0.0
