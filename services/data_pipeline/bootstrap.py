"""The one place concrete adapters are chosen and wired, from configuration only.

Called once per process (cold start, dev stack) and by tests, which may pass their own adapters.
Adapters are imported where they are built, not at module level: a cold start imports only
what its function uses (the intake function never loads the warehouse client, Redis, the
Salla API client or the embeddings SDK).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from data_pipeline.adapters.qstash_queue import QStashQueue
from data_pipeline.observability.logging import configure_logging
from data_pipeline.observability.metrics import PipelineMetrics
from data_pipeline.service_layer.ingest import WebhookIngress
from shared.contract import PipelineSettings
from shared.topics import EMBED_PATH, SYNC_STEP_PATH

if TYPE_CHECKING:
    from data_pipeline.adapters.archive import ArchiveStore
    from data_pipeline.adapters.clickhouse_cdc import CdcSink
    from data_pipeline.adapters.embedder import Embedder
    from data_pipeline.adapters.qstash_queue import SdkHttpClient
    from data_pipeline.adapters.qstash_signature import DeliveryVerifier
    from data_pipeline.adapters.salla_api import SallaGateway
    from data_pipeline.adapters.salla_oauth import SallaOAuth
    from data_pipeline.adapters.state import StateStore
    from data_pipeline.adapters.token_cipher import TokenCipher
    from data_pipeline.adapters.vector_index import VectorIndex
    from data_pipeline.adapters.warehouse import Warehouse
    from data_pipeline.service_layer.domain_events import DomainEventPublisher
    from data_pipeline.service_layer.loader import GroupCommitLoader
    from data_pipeline.service_layer.merchant_tokens import TokenProvider
    from data_pipeline.service_layer.processing import EventProcessor
    from data_pipeline.service_layer.rag import EmbedFeed, RagIndexer, RagSearch
    from data_pipeline.service_layer.sync import SyncOrchestrator


@dataclass
class Rag:
    embedder: Embedder
    vectors: VectorIndex
    indexer: RagIndexer
    search: RagSearch

    async def aclose(self) -> None:
        await self.embedder.aclose()
        await self.vectors.close()


@dataclass
class IntakeContainer:
    """What the intake function needs: verify Salla's webhooks and hand them to QStash."""

    settings: PipelineSettings
    metrics: PipelineMetrics
    queue: QStashQueue
    ingress: WebhookIngress

    async def aclose(self) -> None:
        await self.queue.close()


@dataclass
class Container(IntakeContainer):
    warehouse: Warehouse
    state: StateStore
    cipher: TokenCipher
    loader: GroupCommitLoader
    processor: EventProcessor
    receiver: DeliveryVerifier
    salla: SallaGateway
    oauth: SallaOAuth
    tokens: TokenProvider
    sync: SyncOrchestrator
    feed: EmbedFeed
    rag: Rag | None = None  # None when RAG is off
    cdc: CdcSink | None = None  # applies captured PostgreSQL changes (a ClickHouse warehouse)
    events: DomainEventPublisher | None = None  # domain events for the rest of the platform

    async def aclose(self) -> None:
        await self.loader.drain()
        if self.rag is not None:
            await self.rag.aclose()
        await self.queue.close()
        await self.salla.aclose()
        await self.oauth.aclose()
        await self.state.close()
        self.warehouse.close()


def build_state_store(settings: PipelineSettings) -> StateStore:
    if settings.redis_url is not None:
        from data_pipeline.adapters.redis_state import RedisStateStore

        return RedisStateStore(settings.redis_url.get_secret_value())
    from data_pipeline.adapters.sqlite_state import SqliteStateStore

    return SqliteStateStore(settings.pipeline_data_dir.resolve() / "state.sqlite3")


def build_archive_store(settings: PipelineSettings) -> ArchiveStore:
    from data_pipeline.adapters.archive import open_archive

    options: dict[str, str] = {}
    if settings.raw_archive_region:
        options["region_name"] = settings.raw_archive_region
    if settings.raw_archive_access_key_id and settings.raw_archive_secret_access_key:
        options["aws_access_key_id"] = settings.raw_archive_access_key_id.get_secret_value()
        secret = settings.raw_archive_secret_access_key.get_secret_value()
        options["aws_secret_access_key"] = secret
    return open_archive(settings.archive_url, s3_options=options)


def build_rag(settings: PipelineSettings, warehouse: Warehouse, state: StateStore) -> Rag | None:
    if not settings.rag_active:
        return None
    # Imported here: `openai` (and the vector clients) cost a cold start with RAG off nothing.
    from data_pipeline.adapters.clickhouse_vectors import ClickHouseVectorIndex
    from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse
    from data_pipeline.adapters.embeddings import OpenAIEmbedder
    from data_pipeline.adapters.rag_source import WarehouseDocuments
    from data_pipeline.service_layer.rag import RagIndexer, RagSearch

    if not isinstance(warehouse, ClickHouseWarehouse):
        raise ValueError("RAG reads its documents from the ClickHouse warehouse")
    dimensions = settings.vector_dimensions
    assert dimensions is not None  # the contract requires it when RAG is active
    embedder = OpenAIEmbedder(
        api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else "",
        base_url=str(settings.openai_base_url) if settings.openai_base_url else None,
        model=settings.embedding_model,
        dimensions=dimensions,
        send_dimensions=settings.embedding_dimensions is not None,
        input_types=settings.embedding_input_types,
    )
    vectors: VectorIndex
    if settings.pinecone_api_key is not None:
        from data_pipeline.adapters.pinecone_index import PineconeIndex

        vectors = PineconeIndex(
            api_key=settings.pinecone_api_key.get_secret_value(),
            index_name=settings.pinecone_index,
            host=str(settings.pinecone_host) if settings.pinecone_host else None,
        )
    else:  # local mode: vectors in the warehouse
        vectors = ClickHouseVectorIndex(warehouse)
    indexer = RagIndexer(
        state=state, source=WarehouseDocuments(warehouse), embedder=embedder, index=vectors
    )
    return Rag(embedder, vectors, indexer, RagSearch(embedder=embedder, index=vectors))


def _queue(settings: PipelineSettings, http_client: SdkHttpClient | None = None) -> QStashQueue:
    return QStashQueue(
        token=settings.qstash_token.get_secret_value(),
        base_url=str(settings.qstash_url).rstrip("/"),
        retries=settings.qstash_retries,
        retry_delay=settings.qstash_retry_delay,
        topic_prefix=settings.qstash_topic_prefix,
        flow_parallelism=settings.flow_parallelism,
        http_client=http_client,
    )


def _ingress(
    settings: PipelineSettings, queue: QStashQueue, metrics: PipelineMetrics
) -> WebhookIngress:
    return WebhookIngress(
        queue,
        metrics,
        secret=settings.salla_webhook_secret.get_secret_value().encode(),
        strategy=settings.salla_webhook_strategy,
    )


def bootstrap_intake(
    settings: PipelineSettings,
    *,
    metrics: PipelineMetrics | None = None,
    qstash_http_client: SdkHttpClient | None = None,
) -> IntakeContainer:
    """The intake's parts; `qstash_http_client` for a long-running front (see QStashQueue)."""
    configure_logging(settings.log_level)
    metrics = metrics or PipelineMetrics()
    queue = _queue(settings, qstash_http_client)
    return IntakeContainer(settings, metrics, queue, _ingress(settings, queue, metrics))


def bootstrap(
    settings: PipelineSettings,
    *,
    warehouse: Warehouse | None = None,
    state: StateStore | None = None,
    metrics: PipelineMetrics | None = None,
) -> Container:
    from data_pipeline.adapters.clickhouse_cdc import CdcSink
    from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse
    from data_pipeline.adapters.qstash_signature import DeliveryVerifier
    from data_pipeline.adapters.salla_api import SallaGateway
    from data_pipeline.adapters.salla_oauth import SallaOAuth
    from data_pipeline.adapters.token_cipher import TokenCipher
    from data_pipeline.service_layer.archive import RawArchive
    from data_pipeline.service_layer.domain_events import DomainEventPublisher
    from data_pipeline.service_layer.loader import GroupCommitLoader
    from data_pipeline.service_layer.merchant_tokens import TokenProvider
    from data_pipeline.service_layer.processing import EventProcessor
    from data_pipeline.service_layer.rag import EmbedFeed
    from data_pipeline.service_layer.sync import SyncOrchestrator

    configure_logging(settings.log_level)
    metrics = metrics or PipelineMetrics()
    warehouse = warehouse or ClickHouseWarehouse(
        settings.clickhouse_url.get_secret_value(), settings.clickhouse_database
    )
    state = state or build_state_store(settings)
    queue = _queue(settings)
    cipher = TokenCipher(settings.token_encryption_key.get_secret_value())
    loader = GroupCommitLoader(
        warehouse, metrics, archive=RawArchive(build_archive_store(settings), metrics)
    )
    salla = SallaGateway(str(settings.salla_api_base_url))
    oauth = SallaOAuth(
        str(settings.salla_oauth_token_url),
        settings.salla_client_id,
        settings.salla_client_secret.get_secret_value(),
    )
    tokens = TokenProvider(state, cipher, oauth)
    feed = EmbedFeed(queue, settings.delivery_url(EMBED_PATH), enabled=settings.rag_active)
    events = DomainEventPublisher(
        state,
        queue,
        environment=settings.pipeline_environment.value,
        subscribed=settings.domain_event_list,
        dlq_alert_threshold=settings.dlq_alert_threshold,
    )
    return Container(
        settings=settings,
        metrics=metrics,
        queue=queue,
        ingress=_ingress(settings, queue, metrics),
        warehouse=warehouse,
        state=state,
        cipher=cipher,
        loader=loader,
        processor=EventProcessor(loader, state, cipher, metrics, feed, events),
        receiver=DeliveryVerifier(
            current_signing_key=settings.qstash_current_signing_key.get_secret_value(),
            next_signing_key=settings.qstash_next_signing_key.get_secret_value(),
        ),
        salla=salla,
        oauth=oauth,
        tokens=tokens,
        sync=SyncOrchestrator(
            state=state,
            queue=queue,
            gateway=salla,
            tokens=tokens,
            loader=loader,
            step_url=settings.delivery_url(SYNC_STEP_PATH),
            feed=feed,
            events=events,
        ),
        feed=feed,
        events=events,
        rag=build_rag(settings, warehouse, state),
        cdc=CdcSink(warehouse, settings.cdc_clickhouse_database)
        if isinstance(warehouse, ClickHouseWarehouse)
        else None,
    )
