"""RAG enrichment: keep each merchant's vector index in step with the warehouse, and search it.

- EmbedFeed: after a load is confirmed, the worker (and each sync step) announces which
  products and orders changed, as one QStash message to /api/queue/embed. Embedding never runs
  on the loading path, so an embeddings outage or rate limit cannot hold up the warehouse.
- RagIndexer: for an announcement, reads the *current* warehouse state of those entities under
  a per-document lock (so two deliveries can never write an older state last), builds
  documents, embeds only those whose content hash changed, upserts them under stable ids, and
  deletes the vectors of deleted entities. Redelivery, duplicates and out-of-order messages
  therefore converge to the warehouse's newest state with no repeated embedding calls.
- RagSearch: hybrid retrieval: vector candidates plus exact name/SKU lookups, re-ranked.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from data_pipeline.adapters.embedder import Embedder
from data_pipeline.adapters.queue import EventQueue
from data_pipeline.adapters.rag_source import WarehouseDocuments
from data_pipeline.adapters.state import StateStore
from data_pipeline.adapters.vector_index import VectorIndex, VectorRecord, namespace_for
from data_pipeline.domain.envelope import decode_json_object
from data_pipeline.domain.model import OrderItemSet, OrderVersion, ProductVersion
from data_pipeline.domain.rag import (
    Match,
    hybrid_rank,
    normalize,
    order_document,
    product_document,
    validate_filter,
)
from data_pipeline.errors import InvalidPayload, TransientError
from shared.topics import EMBED_FLOW

log = structlog.get_logger("rag")
MAX_IDS_PER_MESSAGE = 500
LOCK_SECONDS = 60.0
BUSY_RETRY_SECONDS = 2.0
CANDIDATES = 40  # vector candidates re-ranked per search (at least 4 × topK)
INTERNAL_METADATA = ("name_key", "sku_key", "content_hash")


@dataclass(frozen=True, slots=True)
class EmbedRequest:
    merchant_id: int
    products: tuple[int, ...] = ()
    orders: tuple[int, ...] = ()

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"merchantId": self.merchant_id, "products": self.products, "orders": self.orders}
        )

    @classmethod
    def parse(cls, raw: bytes) -> EmbedRequest:
        document = decode_json_object(raw)
        merchant = document.get("merchantId")
        if not _is_id(merchant):
            raise InvalidPayload("embed: merchantId must be a positive integer")
        lists = {}
        for name in ("products", "orders"):
            values = document.get(name, [])
            if not isinstance(values, list) or not all(_is_id(v) for v in values):
                raise InvalidPayload(f"embed: {name} must be a list of positive integers")
            if len(values) > MAX_IDS_PER_MESSAGE:
                raise InvalidPayload(f"embed: more than {MAX_IDS_PER_MESSAGE} {name}")
            lists[name] = tuple(dict.fromkeys(values))
        return cls(merchant, lists["products"], lists["orders"])


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**64


def announcement_for(merchant_id: int, entities: Iterable[Any]) -> EmbedRequest | None:
    """The products and orders a loaded batch touched, or None when there are none."""
    products: dict[int, None] = {}
    orders: dict[int, None] = {}
    for entity in entities:
        if isinstance(entity, ProductVersion) and entity.merchant_id == merchant_id:
            products[entity.product_id] = None
        elif isinstance(entity, OrderVersion | OrderItemSet) and entity.merchant_id == merchant_id:
            orders[entity.order_id] = None
    if not products and not orders:
        return None
    return EmbedRequest(merchant_id, tuple(products), tuple(orders))


class EmbedFeed:
    """Announces loaded entities to the embed step (or does nothing when RAG is off)."""

    def __init__(self, queue: EventQueue, url: str, *, enabled: bool) -> None:
        self._queue = queue
        self._url = url
        self.enabled = enabled

    async def announce(self, merchant_id: int, entities: Iterable[Any], dedup_key: str) -> None:
        """Publish after the warehouse confirmed the load. Raises TransientError, so the
        caller's delivery is retried (loads are idempotent) rather than the update lost."""
        if not self.enabled:
            return
        request = announcement_for(merchant_id, entities)
        if request is None:
            return
        for part in _split(request):
            body = part.to_json()
            dedup = f"embed-{hashlib.sha256(dedup_key.encode() + body).hexdigest()[:40]}"
            await self._queue.publish_message(self._url, body, dedup_id=dedup, flow=EMBED_FLOW)


def _split(request: EmbedRequest) -> list[EmbedRequest]:
    size = MAX_IDS_PER_MESSAGE
    parts = [
        EmbedRequest(request.merchant_id, request.products[i : i + size], ())
        for i in range(0, len(request.products), size)
    ]
    parts += [
        EmbedRequest(request.merchant_id, (), request.orders[i : i + size])
        for i in range(0, len(request.orders), size)
    ]
    return parts


@dataclass(slots=True)
class IndexReport:
    embedded: int = 0  # documents (re-)embedded and upserted
    unchanged: int = 0  # same content hash: embedding call saved
    deleted: int = 0  # vectors removed because the entity was deleted
    missing: int = 0  # not in the warehouse (nothing to index)
    busy: list[str] = field(default_factory=list)  # locked by a concurrent delivery

    def as_dict(self) -> dict[str, int]:
        return {
            "embedded": self.embedded,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "missing": self.missing,
            "busy": len(self.busy),
        }


class IndexBusy(TransientError):
    """Some documents are being indexed by another delivery; retry shortly."""


class RagIndexer:
    def __init__(
        self,
        *,
        state: StateStore,
        source: WarehouseDocuments,
        embedder: Embedder,
        index: VectorIndex,
    ) -> None:
        self._state = state
        self._source = source
        self._embedder = embedder
        self._index = index

    async def index(self, request: EmbedRequest) -> IndexReport:
        """Bring the request's documents in line with the warehouse. Raises TransientError
        (embeddings, vectors or warehouse unavailable; or documents busy) for a retry."""
        merchant = request.merchant_id
        wanted = [f"product:{i}" for i in request.products] + [f"order:{i}" for i in request.orders]
        owner = uuid.uuid4().hex
        locks = [f"embed:{merchant}:{doc_id}" for doc_id in wanted]
        held = await asyncio.gather(
            *(self._state.acquire_lock(name, owner, LOCK_SECONDS) for name in locks)
        )
        report = IndexReport(busy=[d for d, ok in zip(wanted, held, strict=True) if not ok])
        mine = {d for d, ok in zip(wanted, held, strict=True) if ok}
        try:
            if mine:
                await self._index_locked(merchant, request, mine, report)
        finally:
            await asyncio.gather(
                *(
                    self._state.release_lock(name, owner)
                    for name, ok in zip(locks, held, strict=True)
                    if ok
                ),
                return_exceptions=True,
            )
        if report.busy:
            raise IndexBusy(
                f"{len(report.busy)} documents are being indexed by another delivery",
                retry_after=BUSY_RETRY_SECONDS,
            )
        return report

    async def _index_locked(
        self, merchant: int, request: EmbedRequest, mine: set[str], report: IndexReport
    ) -> None:
        # Read the warehouse only now, under the locks: whoever reads later writes later.
        products, orders = await asyncio.gather(
            self._source.products(
                merchant, [i for i in request.products if f"product:{i}" in mine]
            ),
            self._source.orders(merchant, [i for i in request.orders if f"order:{i}" in mine]),
        )
        documents = [product_document(row) for row in products.rows.values()]
        documents += [
            order_document(row, orders.items.get(order_id, []))
            for order_id, row in orders.rows.items()
        ]
        gone = [f"product:{i}" for i in products.deleted] + [f"order:{i}" for i in orders.deleted]
        report.missing = len(mine) - len(documents) - len(gone)
        namespace = namespace_for(merchant)
        stored = await self._index.fetch_metadata(namespace, [d.doc_id for d in documents] + gone)
        changed = [
            d for d in documents if stored.get(d.doc_id, {}).get("content_hash") != d.content_hash
        ]
        report.unchanged = len(documents) - len(changed)
        if changed:
            vectors = await self._embedder.embed([d.text for d in changed], "passage")
            await self._index.upsert(
                namespace,
                [
                    VectorRecord(d.doc_id, v, d.stored_metadata())
                    for d, v in zip(changed, vectors, strict=True)
                ],
            )
            report.embedded = len(changed)
        stale = [doc_id for doc_id in gone if doc_id in stored]
        if stale:
            await self._index.delete(namespace, stale)
            report.deleted = len(stale)


class RagSearch:
    def __init__(self, *, embedder: Embedder, index: VectorIndex) -> None:
        self._embedder = embedder
        self._index = index

    async def search(
        self,
        merchant_id: int,
        query: str,
        top_k: int,
        filter: dict[str, Any] | None = None,
    ) -> list[Match]:
        """Best matches first. Raises FilterError (bad filter) or TransientError."""
        conditions = validate_filter(filter)
        (vector,) = await self._embedder.embed([query], "query")
        namespace = namespace_for(merchant_id)
        key = normalize(query)
        lookups = [self._index.query(namespace, vector, max(CANDIDATES, 4 * top_k), conditions)]
        if key:  # exact name or SKU: found even when the vector ranks near-identical variants
            for field_name in ("name_key", "sku_key"):
                exact = {**conditions, field_name: {"$eq": key}}
                lookups.append(self._index.query(namespace, vector, top_k, exact))
        results = await asyncio.gather(*lookups)
        ranked = hybrid_rank(query, [m for result in results for m in result], top_k)
        return [Match(m.doc_id, m.score, public_metadata(m.metadata)) for m in ranked]


def public_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if k not in INTERNAL_METADATA}
