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
    # The version the load confirmed per document ("product:1" → version): a warehouse read
    # that answers an older one came from a replica that has not caught up, and is retried.
    versions: dict[str, int] = field(default_factory=dict, compare=False)

    def to_json(self) -> bytes:
        document: dict[str, Any] = {
            "merchantId": self.merchant_id,
            "products": self.products,
            "orders": self.orders,
        }
        if self.versions:
            document["versions"] = self.versions
        return orjson.dumps(document)

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
        versions = document.get("versions", {})  # absent in messages queued by older releases
        if not isinstance(versions, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**64
            for v in versions.values()
        ):
            raise InvalidPayload("embed: versions must map document ids to versions")
        announced = {f"product:{i}" for i in lists["products"]} | {
            f"order:{i}" for i in lists["orders"]
        }
        if not set(versions) <= announced:
            raise InvalidPayload("embed: versions names a document the message does not announce")
        return cls(merchant, lists["products"], lists["orders"], versions)


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**64


def announcement_for(merchant_id: int, entities: Iterable[Any]) -> EmbedRequest | None:
    """The products and orders a loaded batch touched, with the newest version loaded of each,
    or None when there are none."""
    products: dict[int, None] = {}
    orders: dict[int, None] = {}
    versions: dict[str, int] = {}
    for entity in entities:
        if isinstance(entity, ProductVersion) and entity.merchant_id == merchant_id:
            products[entity.product_id] = None
            doc_id = f"product:{entity.product_id}"
        elif isinstance(entity, OrderVersion | OrderItemSet) and entity.merchant_id == merchant_id:
            orders[entity.order_id] = None
            doc_id = f"order:{entity.order_id}"
        else:
            continue
        versions[doc_id] = max(versions.get(doc_id, 0), entity.version)
    if not products and not orders:
        return None
    return EmbedRequest(merchant_id, tuple(products), tuple(orders), versions)


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
    merchant, versions = request.merchant_id, request.versions

    def part(products: tuple[int, ...], orders: tuple[int, ...]) -> EmbedRequest:
        ids = {f"product:{i}" for i in products} | {f"order:{i}" for i in orders}
        return EmbedRequest(
            merchant, products, orders, {d: versions[d] for d in ids if d in versions}
        )

    parts = [
        part(request.products[i : i + size], ()) for i in range(0, len(request.products), size)
    ]
    parts += [part((), request.orders[i : i + size]) for i in range(0, len(request.orders), size)]
    return parts


@dataclass(slots=True)
class IndexReport:
    embedded: int = 0  # documents (re-)embedded and upserted
    unchanged: int = 0  # same content hash: embedding call saved
    deleted: int = 0  # vectors removed because the entity was deleted
    missing: int = 0  # not in the warehouse (nothing to index)
    busy: list[str] = field(default_factory=list)  # locked by a concurrent delivery
    behind: list[str] = field(default_factory=list)  # the read answered an older version

    def as_dict(self) -> dict[str, int]:
        return {
            "embedded": self.embedded,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "missing": self.missing,
            "busy": len(self.busy),
            "behind": len(self.behind),
        }


class IndexBusy(TransientError):
    """Some documents are being indexed by another delivery; retry shortly."""


class WarehouseBehind(TransientError):
    """The warehouse answered an older version than the load confirmed (a replica catching up);
    indexing what it answered would leave the index stale, so the documents are retried."""


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
        if report.behind:
            raise WarehouseBehind(
                f"the warehouse has not caught up with {len(report.behind)} documents",
                retry_after=BUSY_RETRY_SECONDS,
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
        seen = {f"product:{i}": row["version"] for i, row in products.rows.items()}
        seen |= {f"order:{i}": row["version"] for i, row in orders.rows.items()}
        seen |= dict.fromkeys(gone, 2**64)  # a deletion is visible: nothing older can follow
        report.behind = [
            doc_id
            for doc_id in sorted(mine)
            if doc_id in request.versions and seen.get(doc_id, -1) < request.versions[doc_id]
        ]
        if report.behind:
            behind = set(report.behind)
            documents = [d for d in documents if d.doc_id not in behind]
            mine = mine - behind
        report.missing = len(mine) - len(documents) - len(gone)
        namespace = namespace_for(merchant)
        # What the index holds comes from our own record of what we embedded, not from a fetch:
        # Pinecone's reads are eventually consistent and can answer a state older than our
        # last upsert (https://docs.pinecone.io/reference/api/known-limitations).
        embedded = await self._state.embedded_digests(namespace, [d.doc_id for d in documents])
        changed = [d for d in documents if embedded.get(d.doc_id) != d.content_hash]
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
        if gone:
            # Unconditionally (deletes are idempotent): whether the vector exists cannot be
            # known from an eventually consistent read.
            await self._index.delete(namespace, gone)
            report.deleted = len(gone)
        record: dict[str, str | None] = {d.doc_id: d.content_hash for d in changed}
        record |= dict.fromkeys(gone)
        if record:
            await self._state.record_embedded(namespace, record)


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
