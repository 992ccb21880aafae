"""RAG enrichment in local mode: embedding throughput, search latency, calls per distinct text.

- Embedding throughput: product documents per second through the real path (the `openai`
  client → the local OpenAI-compatible server → multilingual-e5-small on the CPU), next to the
  bare model in-process, so the HTTP + batching overhead is a ratio, not a guess.
- Search latency over 100k vectors: 100,000 random unit vectors (384 dims, realistic metadata;
  random, so this measures time only: retrieval quality is `bench rag_quality`, with the model)
  in one merchant's namespace of the chDB vector table (the worst case: namespaces are the
  table's sort key, so other merchants' vectors are never scanned). p50/p95 of the nearest-
  neighbour query alone and of the full hybrid search (query embedding + vector candidates +
  exact name/SKU lookups + re-ranking).
- Embedding calls per distinct text: the demo store's month replayed through webhooks →
  QStash → worker → embed step, with 30% duplicates, then every product and order re-sent as
  a newer but unchanged version (also duplicated): texts embedded ÷ distinct texts (target 1.0).
  The same replay with RAG off gives the warehouse-side cost of announcing embed work.
"""

from __future__ import annotations

import asyncio
import copy
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from data_pipeline.adapters.clickhouse_vectors import ClickHouseVectorIndex
from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse
from data_pipeline.adapters.embeddings import OpenAIEmbedder
from data_pipeline.devtools.embeddings_server.app import Fault
from data_pipeline.devtools.salla_samples import CATALOG, delivery_schedule, demo_store
from data_pipeline.domain.rag import normalize, product_document
from data_pipeline.service_layer.rag import RagSearch

from tests.support.embeddings import (
    EMBEDDINGS_KEY,
    embeddings_server,
    rag_settings,
    shared_encoder,
)
from tests.support.harness import start_harness, stop_harness

VECTORS = 100_000
DIM = 384
SEARCHES = 60


def local_embedder(server_url: str) -> OpenAIEmbedder:
    return OpenAIEmbedder(
        api_key=EMBEDDINGS_KEY,
        base_url=f"{server_url}/v1",
        model="multilingual-e5-small",
        dimensions=DIM,
        send_dimensions=False,
        input_types=True,
    )


def _products(count: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(count):
        arabic, english, sku, price = CATALOG[i % len(CATALOG)]
        rows.append(
            {
                "product_id": i + 1,
                "name": f"{arabic if i % 2 == 0 else english} {i}",
                "description": f"{arabic} — {english}. منتج أصلي من متجرنا رقم {i}.",
                "sku": f"{sku}-{i}",
                "price": price,
                "currency": "SAR",
                "status": "sale",
                "category": "القهوة والتمور",
            }
        )
    return rows


async def embedding_throughput(count: int = 512) -> dict[str, float]:
    texts = [product_document(row).text for row in _products(count)]
    encoder = shared_encoder()
    encoder.encode(texts[:8], False)  # warm up
    started = time.perf_counter()
    for start in range(0, count, 64):
        encoder.encode(texts[start : start + 64], False)
    bare = count / (time.perf_counter() - started)
    async with embeddings_server() as (server, _):
        client = local_embedder(server.url)
        await client.embed(texts[:8])
        started = time.perf_counter()
        # Concurrent embed steps of 20 documents each, as the queue delivers them.
        await asyncio.gather(*(client.embed(texts[i : i + 20]) for i in range(0, count, 20)))
        served = count / (time.perf_counter() - started)
        requests = client.requests - 1
        await client.aclose()
    return {
        "documents": count,
        "docs_per_second": round(served, 1),
        "bare_model_docs_per_second": round(bare, 1),
        "http_path_share_of_bare": round(served / bare, 3),
        "requests": requests,
    }


async def search_latency(work: Path) -> dict[str, Any]:
    warehouse = ClickHouseWarehouse(f"chdb://{work / 'clickhouse'}", "bench_rag")
    warehouse.migrate()
    rng = np.random.default_rng(7)
    names = [(CATALOG[i % len(CATALOG)][i % 2], i) for i in range(VECTORS)]
    started = time.perf_counter()
    for start in range(0, VECTORS, 10_000):
        block = rng.standard_normal((10_000, DIM), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        rows = []
        for offset, vector in enumerate(block):
            name, i = names[start + offset]
            metadata = {
                "entity": "product",
                "product_id": str(i),
                "name": f"{name} {i}",
                "name_key": normalize(f"{name} {i}"),
                "sku_key": f"sku {i}",
                "price": float(i % 500),
                "status": "sale",
                "text": f"Product: {name} {i}",
                "content_hash": uuid.uuid4().hex,
            }
            rows.append(
                ["merchant-1", f"product:{i}", i + 1, 0, vector.tolist(), json.dumps(metadata)]
            )
        await asyncio.to_thread(
            warehouse.insert_rows,
            "rag_vectors",
            ("namespace", "doc_id", "seq", "is_deleted", "embedding", "metadata"),
            rows,
        )
    load_seconds = time.perf_counter() - started
    await asyncio.to_thread(
        warehouse.query, "SELECT count() FROM bench_rag.rag_vectors FINAL WHERE is_deleted = 0"
    )
    index = ClickHouseVectorIndex(warehouse)
    count = await index.count("merchant-1")
    assert count == VECTORS, count
    queries = rng.standard_normal((SEARCHES, DIM), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    vector_ms = []
    for query in queries:
        t = time.perf_counter()
        await index.query("merchant-1", query.tolist(), 40)
        vector_ms.append((time.perf_counter() - t) * 1000)
    async with embeddings_server() as (server, _):
        embedder = local_embedder(server.url)
        search = RagSearch(embedder=embedder, index=index)
        hybrid_ms = []
        for i in range(SEARCHES):
            name, n = names[(i * 1637) % VECTORS]
            t = time.perf_counter()
            await search.search(1, f"{name} {n}", 5)
            hybrid_ms.append((time.perf_counter() - t) * 1000)
        await embedder.aclose()
    warehouse.close()
    return {
        "vectors": count,
        "load_seconds": round(load_seconds, 1),
        "vector_query_ms": _percentiles(vector_ms),
        "hybrid_search_ms": _percentiles(hybrid_ms),
    }


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p95": round(ordered[int(len(ordered) * 0.95) - 1], 1),
    }


def _replay_schedule() -> tuple[list[bytes], int]:
    store = demo_store(orders=40)
    first = delivery_schedule(store.events, seed=11, duplicate_share=0.3)
    # "Unchanged updates": each live product's and order's final state sent again as a newer
    # event (same content, later timestamp). Entities that end deleted are left out (a newer
    # creation would legitimately bring them back), and so are intermediate states, which
    # re-sent with newer timestamps would be real changes, not unchanged updates.
    deleted = {p for p, t in store.truth.products.items() if t["deleted"]}
    deleted |= {o for o, order in store.truth.orders.items() if order.deleted}
    final: dict[tuple[str, Any], dict[str, Any]] = {}
    for event in store.events:
        kind = event["event"].split(".")[0]
        data = event["data"]
        entity_id = data["order"]["id"] if "order" in data else data.get("id")  # nested shape
        if kind in ("product", "order") and entity_id not in deleted:
            final[(kind, entity_id)] = event
    unchanged = []
    for event in final.values():
        again = copy.deepcopy(event)
        again["created_at"] = again["created_at"].replace("2026", "2027", 1)
        unchanged.append(again)
    second = delivery_schedule(unchanged, seed=12, duplicate_share=0.5)
    return first + second, len(store.events)


async def replay(
    work: Path, rag: bool, server_url: str | None, *, drain: bool = True
) -> dict[str, Any]:
    chdb = work / "clickhouse"  # chDB: one data path per process
    extra = rag_settings(server_url) if rag and server_url else {}
    harness = await start_harness(work / f"replay-{rag}-{drain}", chdb, **extra)
    deliveries, _ = _replay_schedule()
    try:
        started = time.perf_counter()
        semaphore = asyncio.Semaphore(16)

        async def send(body: bytes) -> None:
            async with semaphore:
                response = await harness.send(body)
                response.raise_for_status()

        await asyncio.gather(*(send(body) for body in deliveries))
        await harness.settle_events(timeout=300)
        loaded = time.perf_counter() - started
        if drain:
            await harness.settle(timeout=300)
        else:
            harness.dispatcher.pause()
        drained = time.perf_counter() - started
        metrics = harness.container.metrics
        documents = {
            outcome: metrics.sample("pipeline_rag_documents_total", outcome=outcome)
            for outcome in ("embedded", "unchanged", "deleted")
        }
    finally:
        await stop_harness(harness)
    return {
        "deliveries": len(deliveries),
        "warehouse_settled_seconds": round(loaded, 2),
        "index_drained_seconds": round(drained, 2),
        "documents": documents,
    }


async def calls_per_distinct_text(work: Path) -> dict[str, Any]:
    async with embeddings_server() as (server, state):
        with_rag = await replay(work, True, server.url)
        texts, distinct, requests = state.texts, len(state.distinct), state.requests
    without = await replay(work, False, None)
    # RAG on, but the embeddings endpoint rate-limits every call for a minute: the warehouse
    # pays only for announcing embed work, not for the local model's CPU on this machine.
    async with embeddings_server() as (server, state):
        state.faults.append(Fault(429, 1_000_000, 60))
        limited = await replay(work, True, server.url, drain=False)
    saved = with_rag["documents"]["unchanged"]
    return {
        "deliveries": with_rag["deliveries"],
        "texts_embedded": texts,
        "distinct_texts": distinct,
        "calls_per_distinct_text": round(texts / distinct, 3) if distinct else None,
        "embedding_requests": requests,
        "embeddings_saved_by_hash": int(saved),
        "warehouse_settled_seconds_rag_on": with_rag["warehouse_settled_seconds"],
        "warehouse_settled_seconds_rag_off": without["warehouse_settled_seconds"],
        "warehouse_settled_seconds_embeddings_limited": limited["warehouse_settled_seconds"],
        "index_drained_seconds": with_rag["index_drained_seconds"],
    }


async def _measure() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-rag-") as tmp:
        work = Path(tmp)
        return {
            "embedding": await embedding_throughput(),
            "search": await search_latency(work),
            "replay": await calls_per_distinct_text(work),
        }


def measure() -> dict[str, Any]:
    return asyncio.run(_measure())


def report(result: dict[str, Any]) -> str:
    e, s, r = result["embedding"], result["search"], result["replay"]
    return "\n".join(
        [
            "RAG enrichment (local mode)",
            f"  embedding: {e['docs_per_second']} docs/s through openai → local server "
            f"({e['requests']} requests for {e['documents']} documents); bare model "
            f"{e['bare_model_docs_per_second']} docs/s; HTTP path at "
            f"{e['http_path_share_of_bare']:.0%} of the bare model",
            f"  search over {s['vectors']:,} vectors: vector query p50 "
            f"{s['vector_query_ms']['p50']} ms, p95 {s['vector_query_ms']['p95']} ms; hybrid "
            f"search p50 {s['hybrid_search_ms']['p50']} ms, p95 {s['hybrid_search_ms']['p95']} ms"
            " (random vectors: time only)",
            f"  replay of {r['deliveries']} deliveries (duplicates + unchanged re-sends): "
            f"{r['texts_embedded']} texts embedded for {r['distinct_texts']} distinct = "
            f"{r['calls_per_distinct_text']} calls per distinct text; "
            f"{r['embeddings_saved_by_hash']} embeddings saved by the content hash; "
            f"{r['embedding_requests']} embedding requests",
            f"  warehouse settled in {r['warehouse_settled_seconds_rag_off']} s with RAG off, "
            f"{r['warehouse_settled_seconds_embeddings_limited']} s with RAG on and embeddings "
            f"rate-limited (announcing only), {r['warehouse_settled_seconds_rag_on']} s with the "
            f"local model embedding on the same 2 cores; index drained at "
            f"{r['index_drained_seconds']} s",
        ]
    )
