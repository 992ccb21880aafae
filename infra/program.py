"""The stack: warehouse, cache, queue topics and the service, wired through the shared contract.

`__main__.py` only calls `run()`. Every account-level name derives from the stack's name
(`salla-pipeline-<stack>`), so several stacks share an AWS, Upstash, ClickHouse Cloud and
Pinecone account without sharing a resource. Everything the service needs reaches its
environment from resource outputs and stack secrets here; every credential stays a secret, in
the state and in the outputs. Stateful resources (warehouse, cache, the generated keys) are
protected in prod.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra import config as stack_config
from infra.components.archive import ArchiveArgs, RawArchiveBucket
from infra.components.cache import Cache, CacheArgs
from infra.components.lambda_service import LambdaService, LambdaServiceArgs
from infra.components.messaging import Messaging, MessagingArgs
from infra.components.network import Network, NetworkArgs
from infra.components.vector_index import VectorIndex, VectorIndexArgs
from infra.components.vercel_service import VercelService, VercelServiceArgs
from infra.components.warehouse import Warehouse, WarehouseArgs
from infra.function_environment import function_environment
from shared.contract import MigratorSettings, Role
from shared.domain_events import SCHEMA_VERSION as EVENT_SCHEMA_VERSION
from shared.topics import WEBHOOK_PATH

RUNTIME_DATA_DIR = "/tmp/salla-pipeline"  # noqa: S108 - Lambda's only writable path; unused with Redis


def run() -> None:
    from data_pipeline.service_layer.schema import LATEST_SCHEMA_VERSION

    settings, secrets = stack_config.load()
    stack = pulumi.get_stack()
    prefix = stack_config.resource_prefix(stack)
    topic_prefix = f"{prefix}-"
    protect = settings.protected
    keep = pulumi.ResourceOptions(protect=protect)

    network = None
    if settings.deploy_target == "lambda" and settings.lambda_.vpc_egress:
        network = Network(
            prefix, NetworkArgs(settings.lambda_.vpc_cidr, settings.lambda_.availability_zones)
        )
    if settings.deploy_target == "vercel" and not (
        settings.clickhouse.allowed_ips or settings.clickhouse.allow_anywhere
    ):
        raise stack_config.ConfigError(
            "pipeline:clickhouse.allowedIps: required with deployTarget vercel "
            "(Vercel's static egress IPs; see docs/infrastructure.md)"
        )
    warehouse = Warehouse(
        prefix,
        WarehouseArgs(settings.clickhouse, network.egress_cidrs if network else [], protect),
    )
    cache = Cache(prefix, CacheArgs(settings.redis, protect))
    rag = settings.rag
    vectors = None
    if rag.enabled:
        assert secrets.pinecone_api_key is not None  # config.load requires it with rag on
        vectors = VectorIndex(prefix, VectorIndexArgs(rag, secrets.pinecone_api_key, protect))
    archive = RawArchiveBucket(
        prefix,
        ArchiveArgs(
            settings.archive,
            "-".join(filter(None, [f"{prefix}-raw-archive", settings.archive.bucket_suffix])),
            protect,
            object_lock=settings.environment == "prod",
        ),
    )
    # Vercel has no IAM role: a user holding only the archive's write grant, its key a secret.
    archive_key = None
    if settings.deploy_target == "vercel":
        writer = aws.iam.User(f"{prefix}-archive-writer", name=f"{prefix}-archive-writer")
        aws.iam.UserPolicy(
            f"{prefix}-archive-writer-policy", user=writer.name, policy=archive.writer_policy
        )
        archive_key = aws.iam.AccessKey(f"{prefix}-archive-writer-key", user=writer.name)
    api_key = random.RandomPassword(f"{prefix}-api-key", length=40, special=False, opts=keep)
    # Losing this key makes every stored merchant token unreadable: protected like the data.
    token_key = random.RandomBytes(f"{prefix}-token-key", length=32, opts=keep)
    fernet_key = token_key.base64.apply(lambda b64: b64.replace("+", "-").replace("/", "_"))
    parallelism = settings.worker_parallelism
    metrics = "emf" if settings.deploy_target == "lambda" else "prometheus"

    def environment(public_url: pulumi.Output[str], role: Role) -> dict[str, pulumi.Output[str]]:
        return function_environment(
            {
                "PIPELINE_ENVIRONMENT": "production",
                "PIPELINE_DEPLOYMENT": stack,
                "PIPELINE_ROLE": role.value,
                "PIPELINE_METRICS": metrics,
                "PIPELINE_PUBLIC_URL": public_url,
                "PIPELINE_API_KEY": api_key.result,
                "SALLA_WEBHOOK_SECRET": secrets.salla_webhook_secret,
                "SALLA_WEBHOOK_STRATEGY": settings.salla_webhook_strategy,
                "SALLA_API_BASE_URL": settings.salla_api_base_url,
                "SALLA_OAUTH_TOKEN_URL": settings.salla_oauth_token_url,
                "SALLA_CLIENT_ID": settings.salla_client_id,
                "SALLA_CLIENT_SECRET": secrets.salla_client_secret,
                "QSTASH_URL": settings.qstash_url,
                "QSTASH_TOKEN": secrets.qstash_token,
                "QSTASH_CURRENT_SIGNING_KEY": secrets.qstash_current_signing_key,
                "QSTASH_NEXT_SIGNING_KEY": secrets.qstash_next_signing_key,
                "QSTASH_RETRIES": str(settings.qstash_retries),
                "QSTASH_RETRY_DELAY": settings.qstash_retry_delay or "",
                "QSTASH_TOPIC_PREFIX": topic_prefix,
                "QSTASH_FLOW_PARALLELISM_EVENTS": str(parallelism.events),
                "QSTASH_FLOW_PARALLELISM_SYNC": str(parallelism.sync),
                "QSTASH_FLOW_PARALLELISM_EMBED": str(parallelism.embed),
                "CLICKHOUSE_URL": warehouse.connection_string,
                "CLICKHOUSE_DATABASE": warehouse.database,
                "REDIS_URL": cache.redis_url,
                "TOKEN_ENCRYPTION_KEY": fernet_key,
                "PIPELINE_DATA_DIR": RUNTIME_DATA_DIR,
                "LOG_LEVEL": settings.log_level,
                "RAG_ENABLED": "true" if rag.enabled else "false",
                "OPENAI_API_KEY": secrets.openai_api_key or "",
                "OPENAI_BASE_URL": rag.openai_base_url or "",
                "EMBEDDING_MODEL": rag.embedding_model,
                "EMBEDDING_DIMENSIONS": str(rag.embedding_dimensions or ""),
                "EMBEDDING_INPUT_TYPES": "false",
                "PINECONE_API_KEY": secrets.pinecone_api_key or "",
                "PINECONE_INDEX": vectors.index_name if vectors else "",
                "PINECONE_HOST": vectors.host if vectors else "",
                "CDC_DATABASE_URL": secrets.cdc_database_url or "",
                "CDC_TABLES": ",".join(settings.cdc.tables),
                "CDC_PUBLICATION": settings.cdc.publication,
                "CDC_SLOT": settings.cdc.slot,
                "CDC_CLICKHOUSE_DATABASE": settings.cdc.database,
                # Published only where subscribed: a QStash URL group exists with endpoints.
                "DOMAIN_EVENTS": ",".join(settings.subscribed_events),
                "DLQ_ALERT_THRESHOLD": str(settings.dlq_alert_threshold),
                "RAW_ARCHIVE_URL": archive.url,
                "RAW_ARCHIVE_ACCESS_KEY_ID": archive_key.id if archive_key else "",
                "RAW_ARCHIVE_SECRET_ACCESS_KEY": archive_key.secret if archive_key else "",
                "RAW_ARCHIVE_REGION": aws.get_region_output().region if archive_key else "",
            }
        )

    service: LambdaService | VercelService
    if settings.deploy_target == "lambda":
        migrator_environment = function_environment(
            {
                "REDIS_URL": cache.redis_url,
                "CLICKHOUSE_DATABASE": warehouse.database,
                "LOG_LEVEL": settings.log_level,
            },
            MigratorSettings,
        )
        service = LambdaService(
            prefix,
            LambdaServiceArgs(
                settings.lambda_,
                environment,
                migrator_environment,
                warehouse.migration_credentials,
                LATEST_SCHEMA_VERSION,
                network,
                archive.writer_policy,
            ),
        )
    else:
        assert settings.vercel is not None
        service = VercelService(
            prefix,
            VercelServiceArgs(
                settings.vercel,
                settings.vercel.project_name or prefix,
                environment,
                warehouse.migration_credentials,
                LATEST_SCHEMA_VERSION,
                api_key.result,
            ),
        )
    messaging = Messaging(
        prefix,
        MessagingArgs(
            service.endpoint,
            topic_prefix,
            settings.topic_subscribers,
            cdc_enabled=settings.cdc.enabled,
        ),
    )

    pulumi.export("pipeline_endpoint", service.endpoint)
    pulumi.export("webhook_url", pulumi.Output.concat(service.endpoint, WEBHOOK_PATH))
    pulumi.export("topic_endpoints", messaging.endpoints)
    # For the app core: which domain events arrive on which topic, in which schema version.
    pulumi.export("event_topics", messaging.event_topics)
    pulumi.export("event_schema_version", EVENT_SCHEMA_VERSION)
    pulumi.export("egress_ips", network.egress_cidrs if network else [])
    pulumi.export("clickhouse_connection_string", warehouse.connection_string)
    pulumi.export("clickhouse_read_only_connection_string", warehouse.read_only_connection_string)
    pulumi.export("redis_url", cache.redis_url)
    pulumi.export("redis_token", cache.redis_token)
    pulumi.export("qstash_token", pulumi.Output.secret(secrets.qstash_token))
    pulumi.export(
        "qstash_current_signing_key", pulumi.Output.secret(secrets.qstash_current_signing_key)
    )
    pulumi.export("qstash_next_signing_key", pulumi.Output.secret(secrets.qstash_next_signing_key))
    pulumi.export("pipeline_api_key", pulumi.Output.secret(api_key.result))
    pulumi.export("raw_archive_url", archive.url)
    if vectors is not None:
        pulumi.export("pinecone_index", vectors.index_name)
        pulumi.export("pinecone_host", vectors.host)
