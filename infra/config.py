"""Typed stack configuration: the only module that reads Pulumi config.

Plain settings live under the `pipeline` namespace (camelCase keys in Pulumi.<stack>.yaml) and
are validated by pydantic; a bad value stops the program with one message naming the key, e.g.
`pipeline:clickhouse.backupPeriodHours: must be <= 24`. Credentials are Pulumi secrets
(`pulumi config set --secret pipeline:qstashToken ...`) and stay Outputs, never plain strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import ip_network
from typing import Any, Literal

import pulumi
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from shared.contract import KNOWN_EMBEDDING_DIMENSIONS

NAMESPACE = "pipeline"


class _Section(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ClickHouseConfig(_Section):
    cloud_provider: Literal["aws", "gcp", "azure"] = "aws"
    region: str = Field(min_length=2)
    # Organisations on ClickHouse Cloud's legacy tiers set one; newer ones size by memory only.
    tier: Literal["development", "production"] | None = None
    min_replica_memory_gb: int = Field(8, ge=8, le=356)
    max_replica_memory_gb: int = Field(16, ge=8, le=356)
    num_replicas: int = Field(3, ge=1, le=20)
    idle_scaling: bool = False
    idle_timeout_minutes: int | None = Field(None, ge=5)
    # RPO <= 24 h: at least one backup a day. Retention is how far back a restore can go.
    backup_period_hours: int = Field(24, ge=1, le=24)
    backup_retention_hours: int = Field(168, ge=24, le=24 * 365)
    allowed_ips: list[str] = Field(default_factory=list)
    allow_anywhere: bool = False
    restore_from_backup_id: str | None = None
    database: str = Field("analytics", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

    @field_validator("allowed_ips")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            ip_network(value, strict=False)  # raises ValueError naming the bad entry
        return values

    @model_validator(mode="after")
    def _shape(self) -> ClickHouseConfig:
        if self.max_replica_memory_gb < self.min_replica_memory_gb:
            raise ValueError("maxReplicaMemoryGb must be >= minReplicaMemoryGb")
        if self.idle_scaling and self.idle_timeout_minutes is None:
            raise ValueError("idleTimeoutMinutes is required when idleScaling is true")
        if any(ip_network(v, strict=False).prefixlen == 0 for v in self.allowed_ips):
            raise ValueError("use allowAnywhere: true instead of a 0.0.0.0/0 entry")
        return self


class RedisConfig(_Section):
    primary_region: str = "eu-central-1"
    read_regions: list[str] = Field(default_factory=list)
    prod_pack: bool = False


class WorkerParallelism(_Section):
    """QStash flow control: most deliveries of each kind in flight at once (shared.topics)."""

    events: int = Field(30, ge=1, le=1000)
    sync: int = Field(10, ge=1, le=1000)
    embed: int = Field(5, ge=1, le=1000)

    @property
    def total(self) -> int:
        return self.events + self.sync + self.embed


class LambdaConfig(_Section):
    memory_mb: int = Field(1024, ge=128, le=10240)
    # API Gateway HTTP APIs stop waiting after 30 s.
    timeout_seconds: int = Field(29, ge=3, le=29)
    # Reserved concurrency per function: intake (Salla's webhooks) and workers (QStash
    # deliveries and the app's API calls) never take each other's slots.
    intake_concurrency: int = Field(20, ge=1)
    worker_concurrency: int = Field(60, ge=2)
    # The migrator runs the warehouse migrations on every deploy (up to Lambda's 15 minutes).
    migrator_timeout_seconds: int = Field(900, ge=60, le=900)
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731] = 30
    # Run in a VPC whose NAT gateway gives the function fixed egress IPs for ClickHouse.
    vpc_egress: bool = True
    vpc_cidr: str = "10.40.0.0/16"
    availability_zones: list[str] = Field(default_factory=list, max_length=3)
    bundle_path: str = "dist/lambda.zip"

    @model_validator(mode="after")
    def _zones(self) -> LambdaConfig:
        ip_network(self.vpc_cidr)
        if self.vpc_egress and len(self.availability_zones) < 2:
            raise ValueError("availabilityZones needs two zones when vpcEgress is true")
        return self


class VercelConfig(_Section):
    # Default: salla-pipeline-<stack>, like every other account-level name.
    project_name: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]{0,99}$")
    team_id: str | None = None
    region: str = "fra1"
    domain: str | None = None  # custom production domain; default <project>.vercel.app


class RagConfig(_Section):
    """Embeddings and the Pinecone index; `enabled: false` leaves both out."""

    enabled: bool = True
    embedding_model: str = Field("text-embedding-3-small", min_length=1, max_length=100)
    embedding_dimensions: int | None = Field(None, ge=8, le=4096)
    openai_base_url: str | None = None  # an OpenAI-compatible endpoint instead of OpenAI
    pinecone_cloud: Literal["aws", "gcp", "azure"] = "aws"
    pinecone_region: str = "us-east-1"
    index_name: str | None = Field(None, pattern=r"^[a-z0-9-]{1,45}$")

    @property
    def dimensions(self) -> int:
        dimensions = self.embedding_dimensions or KNOWN_EMBEDDING_DIMENSIONS.get(
            self.embedding_model
        )
        assert dimensions is not None  # checked by the validator below
        return dimensions

    @model_validator(mode="after")
    def _known_size(self) -> RagConfig:
        if self.embedding_dimensions is None and (
            self.embedding_model not in KNOWN_EMBEDDING_DIMENSIONS
        ):
            raise ValueError(f"embeddingDimensions is required for model {self.embedding_model!r}")
        return self


class CdcConfig(_Section):
    """Change data capture from the app's PostgreSQL; no tables: off. The database URL is the
    secret `pipeline:cdcDatabaseUrl`."""

    tables: list[str] = Field(default_factory=list)
    publication: str = Field("analytics_cdc", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    slot: str = Field("analytics_cdc", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    database: str = Field("oltp", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

    @property
    def enabled(self) -> bool:
        return bool(self.tables)


class ArchiveConfig(_Section):
    """The raw archive bucket (infra/components/archive.py). S3 bucket names are global: the
    bucket is `<prefix>-raw-archive[-<bucketSuffix>]` (e.g. the account id as suffix)."""

    bucket_suffix: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]{0,20}$")
    lock_days: int = Field(365, ge=1, le=36_500)  # prod: object lock retention
    infrequent_access_days: int = Field(30, ge=30, le=3650)  # S3's minimum for Standard-IA


class PipelineConfig(_Section):
    environment: Literal["dev", "prod"]
    deploy_target: Literal["lambda", "vercel"] = "lambda"
    protect: bool | None = None  # default: on in prod
    clickhouse: ClickHouseConfig
    redis: RedisConfig = Field(default_factory=RedisConfig)
    lambda_: LambdaConfig = Field(default_factory=LambdaConfig, alias="lambda")
    vercel: VercelConfig | None = None
    rag: RagConfig = Field(default_factory=RagConfig)
    cdc: CdcConfig = Field(default_factory=CdcConfig)
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig)
    qstash_url: str = "https://qstash.upstash.io"
    qstash_retries: int = Field(3, ge=0, le=20)
    qstash_retry_delay: str | None = None
    worker_parallelism: WorkerParallelism = Field(default_factory=WorkerParallelism)
    topic_subscribers: dict[str, list[str]] = Field(default_factory=dict)
    dlq_alert_threshold: int = Field(10, ge=1, le=100_000)
    salla_webhook_strategy: Literal["signature", "token"] = "signature"
    # The Salla app's OAuth client id (refreshing merchant tokens for historical sync).
    salla_client_id: str = Field(min_length=1, max_length=200)
    salla_api_base_url: str = "https://api.salla.dev/admin/v2"
    salla_oauth_token_url: str = "https://accounts.salla.sa/oauth2/token"  # noqa: S105
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _consistency(self) -> PipelineConfig:
        if self.deploy_target == "vercel" and self.vercel is None:
            raise ValueError("vercel settings are required when deployTarget is vercel")
        if self.environment == "prod" and self.clickhouse.allow_anywhere:
            raise ValueError("clickhouse.allowAnywhere is refused in prod")
        workers = self.lambda_.worker_concurrency
        if self.deploy_target == "lambda" and self.worker_parallelism.total >= workers:
            raise ValueError(
                f"workerParallelism (events + sync + embed = {self.worker_parallelism.total}) "
                f"must stay below lambda.workerConcurrency ({workers}): QStash would meet "
                "throttled workers, and the app's API calls need the rest"
            )
        return self

    @property
    def subscribed_events(self) -> list[str]:
        """The domain events someone subscribed to (pipeline:topicSubscribers), in catalogue
        order: the service publishes those."""
        from shared.domain_events import EVENT_NAMES, NOTIFICATIONS

        names = [name for name in EVENT_NAMES if self.topic_subscribers.get(name)]
        # Someone listens on `notifications`: sync ends and DLQ alerts are copied there too.
        return [*names, NOTIFICATIONS] if self.topic_subscribers.get(NOTIFICATIONS) else names

    @property
    def protected(self) -> bool:
        return self.environment == "prod" if self.protect is None else self.protect


@dataclass(frozen=True)
class Secrets:
    """Account-level credentials, set with `pulumi config set --secret`."""

    qstash_token: pulumi.Output[str]
    qstash_current_signing_key: pulumi.Output[str]
    qstash_next_signing_key: pulumi.Output[str]
    salla_webhook_secret: pulumi.Output[str]
    salla_client_secret: pulumi.Output[str]
    openai_api_key: pulumi.Output[str] | None = None  # with rag.enabled
    pinecone_api_key: pulumi.Output[str] | None = None  # with rag.enabled
    cdc_database_url: pulumi.Output[str] | None = None  # with cdc.tables


class ConfigError(pulumi.RunError):
    """Reported by Pulumi as one message, without a traceback."""


_SECTIONS = (
    "clickhouse",
    "redis",
    "lambda",
    "vercel",
    "rag",
    "cdc",
    "archive",
    "topicSubscribers",
    "workerParallelism",
)
_SCALARS = (
    "environment",
    "deployTarget",
    "protect",
    "qstashUrl",
    "qstashRetries",
    "qstashRetryDelay",
    "sallaWebhookStrategy",
    "sallaClientId",
    "sallaApiBaseUrl",
    "sallaOauthTokenUrl",
    "logLevel",
    "dlqAlertThreshold",
)
_SECRETS = {
    "qstash_token": "qstashToken",
    "qstash_current_signing_key": "qstashCurrentSigningKey",
    "qstash_next_signing_key": "qstashNextSigningKey",
    "salla_webhook_secret": "sallaWebhookSecret",
    "salla_client_secret": "sallaClientSecret",
}
_RAG_SECRETS = {"openai_api_key": "openaiApiKey", "pinecone_api_key": "pineconeApiKey"}
_CDC_SECRETS = {"cdc_database_url": "cdcDatabaseUrl"}


STACK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,20}$")


def resource_prefix(stack: str) -> str:
    """Every account-level name of a stack starts with this (QStash URL groups and flow-control
    keys, the Redis database, the ClickHouse service, the Pinecone index, functions, log groups,
    the Vercel project), so two stacks in one account never share a resource."""
    if not STACK_NAME.match(stack):
        raise ConfigError(
            f"stack name {stack!r}: use 1-21 lowercase letters, digits and '-' (it prefixes "
            "account-level resource names, e.g. salla-pipeline-<stack>-raw-events)"
        )
    return f"salla-pipeline-{stack}"


def load() -> tuple[PipelineConfig, Secrets]:
    config = pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {}
    for key in _SECTIONS:
        value = config.get_object(key)
        if value is not None:
            raw[key] = value
    for key in _SCALARS:
        value = config.get(key)
        if value is not None:
            raw[key] = value
    try:
        settings = PipelineConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(describe(error)) from None
    needed = {
        **_SECRETS,
        **(_RAG_SECRETS if settings.rag.enabled else {}),
        **(_CDC_SECRETS if settings.cdc.enabled else {}),
    }
    missing = [key for key in needed.values() if config.get_secret(key) is None]
    if missing:
        raise ConfigError(
            "missing secret config: "
            + ", ".join(f"{NAMESPACE}:{key}" for key in missing)
            + " (pulumi config set --secret <key> <value>)"
        )
    secrets = Secrets(**{field: config.require_secret(key) for field, key in needed.items()})
    return settings, secrets


def describe(error: ValidationError) -> str:
    problems = []
    for problem in error.errors(include_url=False, include_input=False):
        key = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "missing":
            message = "is required"
        problems.append(f"{NAMESPACE}:{key}: {message}" if key else f"{NAMESPACE}: {message}")
    return "invalid stack configuration: " + "; ".join(problems)
