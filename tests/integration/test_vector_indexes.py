"""Both vector index adapters behind one contract: Pinecone (official SDK, at the HTTP
boundary against a local stand-in of its data plane) and the warehouse table (chDB)."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from data_pipeline.adapters.clickhouse_vectors import ClickHouseVectorIndex
from data_pipeline.adapters.pinecone_index import (
    CONFIGURATION_RETRY_SECONDS,
    PineconeIndex,
    VectorIndexMisconfigured,
)
from data_pipeline.adapters.vector_index import UPSERT_BATCH, VectorRecord
from data_pipeline.devtools.serving import start_server
from data_pipeline.errors import PermanentError, TransientError

from tests.support.pinecone_standin import API_KEY, PineconeState, create_pinecone_app

DIM = 384


def unit(seed: int) -> list[float]:
    rng = random.Random(seed)
    values = [rng.gauss(0, 1) for _ in range(DIM)]
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def record(doc_id: str, seed: int, **metadata: Any) -> VectorRecord:
    return VectorRecord(doc_id, unit(seed), {"entity": doc_id.split(":")[0], **metadata})


@pytest_asyncio.fixture(params=["pinecone", "clickhouse"])
async def index(request, warehouse) -> AsyncIterator[Any]:
    if request.param == "clickhouse":
        yield ClickHouseVectorIndex(warehouse)
        return
    state = PineconeState(dimension=DIM)
    server = await start_server(create_pinecone_app(state), "127.0.0.1", 0, lifespan="off")
    adapter = PineconeIndex(api_key=API_KEY, index_name=None, host=server.url)
    adapter.standin = state  # type: ignore[attr-defined]
    try:
        yield adapter
    finally:
        await adapter.close()
        await server.stop()


async def test_upsert_query_fetch_count_and_namespaces_are_isolated(index):
    await index.upsert("merchant-1", [record("product:1", 1, price=10.0), record("order:2", 2)])
    await index.upsert("merchant-2", [record("product:1", 3)])
    matches = await index.query("merchant-1", unit(1), 2)
    assert [m.doc_id for m in matches] == ["product:1", "order:2"]
    assert matches[0].score == pytest.approx(1.0, abs=1e-4)
    assert matches[0].metadata["price"] == 10.0
    assert await index.count("merchant-1") == 2
    assert await index.count("merchant-2") == 1
    assert set(await index.fetch_metadata("merchant-1", ["product:1", "product:9"])) == {
        "product:1"
    }


async def test_an_upsert_under_the_same_id_replaces_and_a_delete_removes(index):
    await index.upsert("merchant-1", [record("product:1", 1, price=10.0)])
    await index.upsert("merchant-1", [record("product:1", 5, price=12.5)])
    (match,) = await index.query("merchant-1", unit(5), 5)
    assert (match.doc_id, match.metadata["price"]) == ("product:1", 12.5)
    await index.delete("merchant-1", ["product:1"])
    assert await index.query("merchant-1", unit(5), 5) == []
    assert await index.fetch_metadata("merchant-1", ["product:1"]) == {}


async def test_filters_in_pinecone_syntax(index):
    await index.upsert(
        "merchant-1",
        [
            record("product:1", 1, price=10.0, status="sale", name_key="قهوه عربيه"),
            record("product:2", 2, price=99.0, status="hidden"),
            record("order:3", 3, total=150.0, status="completed", city="جدة"),
        ],
    )
    query = unit(7)

    async def ids(spec: dict[str, Any]) -> set[str]:
        return {m.doc_id for m in await index.query("merchant-1", query, 10, spec)}

    assert await ids({"entity": {"$eq": "product"}}) == {"product:1", "product:2"}
    assert await ids({"entity": {"$eq": "product"}, "price": {"$lte": 50}}) == {"product:1"}
    assert await ids({"status": {"$in": ["completed", "hidden"]}}) == {"product:2", "order:3"}
    assert await ids({"status": {"$nin": ["completed", "hidden"]}}) == {"product:1"}
    assert await ids({"city": {"$eq": "جدة"}}) == {"order:3"}
    assert await ids({"name_key": {"$eq": "قهوه عربيه"}}) == {"product:1"}
    assert await ids({"total": {"$gt": 150}}) == set()


async def test_many_records_are_upserted_in_batches(index):
    records = [record(f"product:{i}", i) for i in range(UPSERT_BATCH * 2 + 5)]
    await index.upsert("merchant-1", records)
    assert await index.count("merchant-1") == len(records)
    fetched = await index.fetch_metadata("merchant-1", [r.doc_id for r in records])
    assert len(fetched) == len(records)
    standin = getattr(index, "standin", None)
    if standin is not None:
        sizes = [len(body["vectors"]) for kind, body in standin.calls if kind == "upsert"]
        assert sizes == [UPSERT_BATCH, UPSERT_BATCH, 5]


async def pinecone_with(state: PineconeState, api_key: str = API_KEY):
    server = await start_server(create_pinecone_app(state), "127.0.0.1", 0, lifespan="off")
    return server, PineconeIndex(api_key=api_key, index_name=None, host=server.url)


async def test_pinecone_429_and_5xx_are_retried_by_the_sdk_honouring_retry_after():
    state = PineconeState(dimension=DIM, faults=[(429, 0.1), (503, None)])
    server, adapter = await pinecone_with(state)
    try:
        await adapter.upsert("merchant-1", [record("product:1", 1)])
        assert await adapter.count("merchant-1") == 1
        assert state.faults == []
    finally:
        await adapter.close()
        await server.stop()


async def test_pinecone_persistent_failures_and_rejections_map_to_our_errors():
    state = PineconeState(dimension=DIM, faults=[(503, None)] * 20)
    server, adapter = await pinecone_with(state)
    try:
        with pytest.raises(TransientError, match="pinecone upsert failed"):
            await adapter.upsert("merchant-1", [record("product:1", 1)])
        state.faults.clear()
        with pytest.raises(PermanentError, match="400"):  # wrong dimension: never succeeds
            await adapter.upsert("merchant-1", [VectorRecord("product:1", [0.1] * 8, {})])
    finally:
        await adapter.close()
        await server.stop()


async def test_pinecone_auth_and_missing_index_are_an_outage_not_poison():
    """A rotated key (401), a suspended project (403) or a wrong index host (404) says nothing
    about the message: back off for minutes (and log an alert) rather than dead-letter every
    index update (https://docs.pinecone.io/reference/api/errors)."""
    server, wrong_key = await pinecone_with(PineconeState(dimension=DIM), api_key="wrong")
    try:
        with pytest.raises(VectorIndexMisconfigured, match="401") as refused:
            await wrong_key.count("merchant-1")
        assert refused.value.retry_after == CONFIGURATION_RETRY_SECONDS
        assert isinstance(refused.value, TransientError)
        assert "wrong" not in str(refused.value)  # the key is never echoed
    finally:
        await wrong_key.close()
        await server.stop()
    state = PineconeState(dimension=DIM, faults=[(403, None), (404, None)])
    server, adapter = await pinecone_with(state)
    try:
        for status in ("403", "404"):
            with pytest.raises(VectorIndexMisconfigured, match=status):
                await adapter.upsert("merchant-1", [record("product:1", 1)])
    finally:
        await adapter.close()
        await server.stop()


async def test_pinecone_delete_in_an_empty_namespace_is_nothing_to_delete():
    """Serverless answers 404 for a delete in a namespace that holds nothing yet."""
    state = PineconeState(dimension=DIM)
    server, adapter = await pinecone_with(state)
    try:
        await adapter.delete("merchant-404", ["product:1"])
        assert ("delete", {"ids": ["product:1"], "namespace": "merchant-404"}) in state.calls
    finally:
        await adapter.close()
        await server.stop()


async def test_the_standin_reads_lag_behind_writes_as_pinecone_documents():
    """Writes are acknowledged before they are readable, and become readable in order."""
    state = PineconeState(dimension=DIM, read_lag_seconds=0.5)
    server, adapter = await pinecone_with(state)
    try:
        await adapter.upsert("merchant-1", [record("product:1", 1)])
        assert await adapter.fetch_metadata("merchant-1", ["product:1"]) == {}  # not yet
        await adapter.delete("merchant-1", ["product:1"])
        await asyncio.sleep(0.7)
        assert await adapter.fetch_metadata("merchant-1", ["product:1"]) == {}  # upsert, delete
        await adapter.upsert("merchant-1", [record("product:2", 2)])
        await asyncio.sleep(0.7)
        assert set(await adapter.fetch_metadata("merchant-1", ["product:2"])) == {"product:2"}
    finally:
        await adapter.close()
        await server.stop()
