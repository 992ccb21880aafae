"""The environment-variable contract between the Pulumi program and the service.

Every variable the service reads is a field of `PipelineSettings`. The infrastructure program
builds the deployed function's environment from these same fields (see `env_var_names` and
`secret_env_var_names`), so renaming a field changes both sides at once and breaks the infra
test that compares them. Secrets are `SecretStr`: they never appear in reprs or logs, and the
infrastructure marks exactly these as Pulumi secrets.
"""

from __future__ import annotations

import base64
import binascii
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.dev_credentials import (
    DEV_QSTASH_CURRENT_SIGNING_KEY,
    DEV_QSTASH_NEXT_SIGNING_KEY,
    DEV_QSTASH_TOKEN,
)
from shared.topics import EMBED_FLOW, EVENTS_FLOW, SYNC_FLOW, scoped

# The warehouse's database users: created by the migrator, named in the DSNs infra builds.
WAREHOUSE_WRITER = "pipeline_writer"  # the pipeline: SELECT, INSERT
WAREHOUSE_READER = "app_reader"  # the app: SELECT on the read contract
_PUBLIC_DEV_SECRETS = frozenset(
    {DEV_QSTASH_TOKEN, DEV_QSTASH_CURRENT_SIGNING_KEY, DEV_QSTASH_NEXT_SIGNING_KEY}
)
_MIN_SECRET_LENGTH = 16
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_CLICKHOUSE_SCHEMES = frozenset({"http", "https", "clickhouse", "clickhouses", "chdb"})
# Native sizes of the embedding models we know; others need EMBEDDING_DIMENSIONS.
KNOWN_EMBEDDING_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "multilingual-e5-small": 384,
}


class Environment(StrEnum):
    LOCAL = "local"
    TEST = "test"
    PRODUCTION = "production"


class ConfigurationError(Exception):
    """Configuration is missing or malformed. The message is one line naming the variables."""


def _database_name(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError("must be a plain identifier (letters, digits, underscore)")
    return value


def _redis_url(value: SecretStr) -> SecretStr:
    if urlsplit(value.get_secret_value()).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return value


class Role(StrEnum):
    """Which endpoints a deployed function serves (intake and workers scale separately)."""

    ALL = "all"  # one process serves everything (local, Vercel)
    INTAKE = "intake"  # Salla webhooks only: verify, queue, acknowledge
    WORKER = "worker"  # QStash deliveries and the app's API calls


class PipelineSettings(BaseSettings):
    """Every environment variable the data-pipeline service reads (names are upper-cased)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    pipeline_environment: Environment = Field(
        Environment.PRODUCTION,
        description="local | test | production. Production refuses the public dev credentials "
        "and local-only backends.",
    )
    pipeline_deployment: str = Field(
        "local",
        pattern=r"^[a-z0-9][a-z0-9-]{0,40}$",
        description="This deployment's name (the Pulumi stack): a dimension of every metric.",
    )
    pipeline_role: Role = Field(
        Role.ALL,
        description="all | intake | worker: the endpoints this function serves. Intake (Salla "
        "webhooks) gets its own function and concurrency so workers can never starve it.",
    )
    pipeline_metrics: Literal["prometheus", "emf"] = Field(
        "prometheus",
        description="prometheus: GET /metrics (service key in production). emf: CloudWatch "
        "Embedded Metric Format lines in the function's log, where Lambda users look.",
    )
    pipeline_public_url: AnyHttpUrl = Field(
        description="Base URL QStash delivers to; signatures are verified against it + the path."
    )
    pipeline_api_key: SecretStr = Field(
        description="Bearer key for service-to-service calls (sync jobs, RAG search)."
    )
    salla_webhook_secret: SecretStr = Field(
        description="The app's webhook secret from the Salla Partner Portal."
    )
    salla_webhook_strategy: Literal["signature", "token"] = Field(
        "signature", description="Salla webhook security strategy configured for the app."
    )
    qstash_url: AnyHttpUrl = Field(
        AnyHttpUrl("https://qstash.upstash.io"), description="QStash API base URL."
    )
    qstash_token: SecretStr = Field(description="QStash API token (publishing, DLQ).")
    qstash_current_signing_key: SecretStr = Field(description="QStash current signing key.")
    qstash_next_signing_key: SecretStr = Field(description="QStash next signing key.")
    qstash_retries: int = Field(
        3, ge=0, le=20, description="Delivery retries QStash makes before dead-lettering."
    )
    qstash_retry_delay: str | None = Field(
        None,
        max_length=200,
        description="QStash retry delay expression in milliseconds (unset: QStash's backoff).",
    )
    qstash_topic_prefix: str = Field(
        "",
        pattern=r"^[A-Za-z0-9._-]{0,60}$",
        description="Prefix of this deployment's QStash URL groups and flow-control keys, which "
        "are account-level: one per stack, e.g. salla-pipeline-prod-.",
    )
    # Defaults fit one local process, whose group-commit loader batches across concurrent
    # deliveries (fewer in flight means smaller warehouse inserts); a deployment sets its own
    # from its worker function's concurrency (infra: pipeline:workerParallelism).
    qstash_flow_parallelism_events: int = Field(
        64,
        ge=0,
        le=1000,
        description="Most raw-event deliveries in flight at once (QStash flow control; 0: "
        "unlimited). Keep the three below the worker function's concurrency.",
    )
    qstash_flow_parallelism_sync: int = Field(
        8, ge=0, le=1000, description="Most historical-sync steps in flight at once (0: unlimited)."
    )
    qstash_flow_parallelism_embed: int = Field(
        8, ge=0, le=1000, description="Most embed steps in flight at once (0: unlimited)."
    )
    salla_api_base_url: AnyHttpUrl = Field(
        AnyHttpUrl("https://api.salla.dev/admin/v2"), description="Salla Admin API base URL."
    )
    salla_oauth_token_url: AnyHttpUrl = Field(
        AnyHttpUrl("https://accounts.salla.sa/oauth2/token"),
        description="Salla OAuth token endpoint (refreshing merchant access tokens).",
    )
    salla_client_id: str = Field(
        "", max_length=200, description="The app's OAuth client id (needed to refresh tokens)."
    )
    salla_client_secret: SecretStr = Field(
        SecretStr(""), description="The app's OAuth client secret (needed to refresh tokens)."
    )
    clickhouse_url: SecretStr = Field(
        description="clickhouse-connect DSN: https://user:pass@host:8443 or chdb:///abs/path."
    )
    clickhouse_database: str = Field("analytics", description="Warehouse database name.")
    rag_enabled: bool | None = Field(
        None,
        description="Embed products and orders and serve /api/rag/search. Unset: on when an "
        "embedding endpoint is configured (OPENAI_API_KEY or OPENAI_BASE_URL).",
    )
    openai_api_key: SecretStr | None = Field(
        None, description="API key of the OpenAI (or OpenAI-compatible) embeddings endpoint."
    )
    openai_base_url: AnyHttpUrl | None = Field(
        None,
        description="OpenAI-compatible API base URL, e.g. http://127.0.0.1:8070/v1 "
        "(unset: OpenAI).",
    )
    embedding_model: str = Field(
        "text-embedding-3-small", min_length=1, max_length=100, description="Embedding model."
    )
    embedding_dimensions: int | None = Field(
        None,
        ge=8,
        le=4096,
        description="Vector size; unset: the model's own (1536 for text-embedding-3-small).",
    )
    embedding_input_types: bool = Field(
        False,
        description="Send input_type query/passage: for asymmetric E5-style models such as the "
        "local multilingual-e5-small.",
    )
    pinecone_api_key: SecretStr | None = Field(
        None, description="Pinecone API key; unset: vectors live in the warehouse (local mode)."
    )
    pinecone_index: str | None = Field(
        None, max_length=45, description="Pinecone index name (one namespace per merchant)."
    )
    pinecone_host: AnyHttpUrl | None = Field(
        None, description="The index's data-plane host (skips the describe-index lookup)."
    )
    redis_url: SecretStr | None = Field(
        None,
        description="redis:// or rediss:// URL of the state store; unset = embedded SQLite "
        "(local only: production requires Redis).",
    )
    cdc_database_url: SecretStr | None = Field(
        None,
        description="libpq URL of the PostgreSQL to capture (wal_level=logical, a role with "
        "REPLICATION); unset = change data capture off.",
    )
    cdc_tables: str = Field(
        "", description="Comma-separated schema.table list to capture (required with CDC on)."
    )
    cdc_publication: str = Field("analytics_cdc", description="The publication CDC reads.")
    cdc_slot: str = Field("analytics_cdc", description="The logical replication slot CDC reads.")
    cdc_clickhouse_database: str = Field(
        "oltp", description="ClickHouse database of the captured tables."
    )
    domain_events: str = Field(
        "",
        description="Comma-separated domain events that have subscribers (shared/domain_events.py "
        "names, e.g. order.created,order.status_changed): each is published to its QStash topic "
        "(event.<name>); `notifications` also copies sync ends and DLQ alerts to the "
        "notifications topic. Empty: none is published.",
    )
    dlq_alert_threshold: int = Field(
        10,
        ge=1,
        le=100_000,
        description="Events of one merchant dead-lettered in one hour that raise dlq.growing.",
    )
    raw_archive_url: str | None = Field(
        None,
        description="Where every accepted event is archived outside the warehouse: "
        "s3://bucket/prefix (production), file:///path; default <PIPELINE_DATA_DIR>/archive.",
    )
    raw_archive_access_key_id: SecretStr | None = Field(
        None,
        description="AWS access key writing the archive where no IAM role does (Vercel); "
        "unset: the function's role / boto3's default chain.",
    )
    raw_archive_secret_access_key: SecretStr | None = Field(
        None, description="Its secret (with RAW_ARCHIVE_ACCESS_KEY_ID)."
    )
    raw_archive_region: str | None = Field(
        None, description="The archive bucket's AWS region (default: boto3's, e.g. AWS_REGION)."
    )
    token_encryption_key: SecretStr = Field(
        description="Fernet key(s), comma-separated newest first, encrypting merchant tokens."
    )
    pipeline_data_dir: Path = Field(
        Path(".data"), description="Directory for embedded local state (unused with Redis)."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Minimum level of the JSON logs."
    )

    @field_validator("clickhouse_url")
    @classmethod
    def _clickhouse_dsn(cls, value: SecretStr) -> SecretStr:
        dsn = value.get_secret_value()
        parts = urlsplit(dsn)
        if parts.scheme not in _CLICKHOUSE_SCHEMES:
            raise ValueError(f"scheme must be one of {sorted(_CLICKHOUSE_SCHEMES)}")
        # clickhouse-connect reads chdb://./x as location "." and database "x", so only the
        # absolute form (empty netloc) and the in-memory engine are accepted.
        if parts.scheme == "chdb" and parts.netloc not in ("", "memory"):
            raise ValueError("chdb DSNs are chdb:///absolute/path or chdb://memory")
        if parts.scheme == "chdb" and parts.netloc == "" and not parts.path.startswith("/"):
            raise ValueError("chdb data path must be absolute (chdb:///abs/path)")
        if parts.scheme != "chdb" and not parts.hostname:
            raise ValueError("DSN has no host")
        return value

    @field_validator("raw_archive_url")
    @classmethod
    def _archive_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme == "s3" and parts.netloc:
            return value
        if parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path:
            return value
        raise ValueError("must be s3://bucket/prefix or file:///absolute/path")

    @property
    def archive_url(self) -> str:
        """The raw archive's URL: the configured one, else the data dir's `archive`."""
        return self.raw_archive_url or (self.pipeline_data_dir.resolve() / "archive").as_uri()

    @field_validator("qstash_retry_delay")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        # Deployed functions always carry every variable; an empty one means "not set".
        return value or None

    @field_validator(
        "rag_enabled",
        "openai_api_key",
        "openai_base_url",
        "embedding_dimensions",
        "pinecone_api_key",
        "pinecone_index",
        "pinecone_host",
        "raw_archive_access_key_id",
        "raw_archive_secret_access_key",
        "raw_archive_region",
        mode="before",
    )
    @classmethod
    def _blank_optional_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _rag_rules(self) -> PipelineSettings:
        if not self.rag_active:
            return self
        problems = []
        if self.vector_dimensions is None:
            problems.append(
                f"EMBEDDING_DIMENSIONS is required for model {self.embedding_model!r} "
                "(its size is not known)"
            )
        if self.pinecone_api_key is not None and not (self.pinecone_index or self.pinecone_host):
            problems.append("PINECONE_INDEX or PINECONE_HOST is required with PINECONE_API_KEY")
        if self.pipeline_environment is Environment.PRODUCTION:
            if self.openai_api_key is None and self.openai_base_url is None:
                problems.append("OPENAI_API_KEY is required in production with RAG enabled")
            if self.pinecone_api_key is None:
                problems.append("PINECONE_API_KEY is required in production with RAG enabled")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator(
        "clickhouse_database", "cdc_clickhouse_database", "cdc_publication", "cdc_slot"
    )
    @classmethod
    def _identifier(cls, value: str) -> str:
        return _database_name(value)

    @field_validator("cdc_database_url", mode="before")
    @classmethod
    def _blank_url_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _cdc_rules(self) -> PipelineSettings:
        if self.cdc_database_url is None:
            return self
        scheme = urlsplit(self.cdc_database_url.get_secret_value()).scheme
        if scheme not in ("postgres", "postgresql"):
            raise ValueError("CDC_DATABASE_URL must be a postgresql:// URL")
        if not self.cdc_table_list:
            raise ValueError("CDC_TABLES is required when CDC_DATABASE_URL is set")
        for table in self.cdc_table_list:
            parts = table.split(".")
            if len(parts) > 2 or not all(_IDENTIFIER.match(p) for p in parts):
                raise ValueError(f"CDC_TABLES: {table!r} is not schema.table")
        return self

    @property
    def cdc_table_list(self) -> list[str]:
        return [t.strip() for t in self.cdc_tables.split(",") if t.strip()]

    @property
    def domain_event_list(self) -> list[str]:
        return [e.strip() for e in self.domain_events.split(",") if e.strip()]

    @field_validator("domain_events")
    @classmethod
    def _known_events(cls, value: str) -> str:
        from shared.domain_events import EVENT_NAMES, NOTIFICATIONS

        known = (*EVENT_NAMES, NOTIFICATIONS)
        unknown = [e.strip() for e in value.split(",") if e.strip() and e.strip() not in known]
        if unknown:
            raise ValueError(f"unknown domain events {unknown[:5]}; known: {', '.join(known)}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _redis_url(value)

    @field_validator("token_encryption_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr) -> SecretStr:
        for key in value.get_secret_value().split(","):
            try:
                raw = base64.urlsafe_b64decode(key.strip().encode())
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                raise ValueError("each key must be 32 url-safe base64-encoded bytes (Fernet)")
        return value

    @model_validator(mode="after")
    def _production_rules(self) -> PipelineSettings:
        if self.pipeline_environment is not Environment.PRODUCTION:
            return self
        problems: dict[str, str] = {}
        for name in ("qstash_token", "qstash_current_signing_key", "qstash_next_signing_key"):
            if getattr(self, name).get_secret_value() in _PUBLIC_DEV_SECRETS:
                problems[name] = "is the public QStash dev credential; use the real one"
        for name in ("salla_webhook_secret", "pipeline_api_key"):
            if len(getattr(self, name).get_secret_value()) < _MIN_SECRET_LENGTH:
                problems[name] = f"must be at least {_MIN_SECRET_LENGTH} characters"
        if self.pipeline_public_url.scheme != "https":
            problems["pipeline_public_url"] = "must be https in production"
        # Local-only backends: per-instance state would break token refresh single-flight, the
        # shared Salla request budget, sync leases and compare-and-set across instances.
        if self.redis_url is None:
            problems["redis_url"] = (
                "is required in production (embedded SQLite state is per instance)"
            )
        if urlsplit(self.clickhouse_url.get_secret_value()).scheme == "chdb":
            problems["clickhouse_url"] = (
                "must be a ClickHouse server (https://…) in production; chdb:// is local-only"
            )
        # The archive outlives the warehouse only when it is elsewhere (and shared).
        if not (self.raw_archive_url or "").startswith("s3://"):
            problems["raw_archive_url"] = "must be s3://bucket/prefix in production"
        # Access tokens expire after 14 days; historical sync must be able to refresh them.
        if not self.salla_client_id:
            problems["salla_client_id"] = "is required in production (token refresh)"
        if not self.salla_client_secret.get_secret_value():
            problems["salla_client_secret"] = "is required in production (token refresh)"  # noqa: S105
        if problems:
            raise ValueError(
                "; ".join(f"{name.upper()} {why}" for name, why in sorted(problems.items()))
            )
        return self

    def topic(self, name: str) -> str:
        """This deployment's name of a QStash URL group or flow-control key (shared.topics)."""
        return scoped(self.qstash_topic_prefix, name)

    @property
    def flow_parallelism(self) -> dict[str, int]:
        """Flow-control key (shared.topics) → most deliveries in flight; 0: unlimited."""
        return {
            EVENTS_FLOW: self.qstash_flow_parallelism_events,
            SYNC_FLOW: self.qstash_flow_parallelism_sync,
            EMBED_FLOW: self.qstash_flow_parallelism_embed,
        }

    def delivery_url(self, path: str) -> str:
        """The exact URL QStash signs as `sub` for deliveries to `path`."""
        return str(self.pipeline_public_url).rstrip("/") + path

    @property
    def uses_embedded_state(self) -> bool:
        return self.redis_url is None

    @property
    def rag_active(self) -> bool:
        if self.rag_enabled is not None:
            return self.rag_enabled
        return self.openai_api_key is not None or self.openai_base_url is not None

    @property
    def vector_dimensions(self) -> int | None:
        return self.embedding_dimensions or KNOWN_EMBEDDING_DIMENSIONS.get(self.embedding_model)


class MigratorSettings(BaseSettings):
    """The environment of the migrator function (entrypoints/migrate_handler.py). It holds no
    warehouse credential: the deployment hands the admin connection to each invocation."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    redis_url: SecretStr = Field(description="The state store holding the migration lease.")
    clickhouse_database: str = Field("analytics", description="Warehouse database name.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Minimum level of the JSON logs."
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr) -> SecretStr:
        return _redis_url(value)

    @field_validator("clickhouse_database")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return _database_name(value)


def load_migrator_settings() -> MigratorSettings:
    try:
        return MigratorSettings()  # type: ignore[call-arg]  # from the environment
    except ValidationError as error:
        raise ConfigurationError(describe_validation_error(error)) from None


def env_var_names(model: type[BaseSettings] = PipelineSettings) -> list[str]:
    """Every environment variable of a function's contract, in declaration order."""
    return [name.upper() for name in model.model_fields]


def secret_env_var_names(model: type[BaseSettings] = PipelineSettings) -> frozenset[str]:
    """The variables whose values are secrets (and must be Pulumi secrets)."""
    return frozenset(
        name.upper() for name, field in model.model_fields.items() if _is_secret(field.annotation)
    )


def _is_secret(annotation: Any) -> bool:
    args = getattr(annotation, "__args__", ())
    return annotation is SecretStr or SecretStr in args


def load_settings(**overrides: Any) -> PipelineSettings:
    """Read the environment; raise ConfigurationError with one line naming each bad variable."""
    try:
        return PipelineSettings(**overrides)
    except ValidationError as error:
        raise ConfigurationError(describe_validation_error(error)) from None


def describe_validation_error(error: ValidationError) -> str:
    parts = []
    for problem in error.errors(include_url=False, include_input=False):
        location = [str(part) for part in problem["loc"] if part != "__root__"]
        message = problem["msg"].removeprefix("Value error, ")
        if location:
            variable = location[0].upper()
            message = "is required" if problem["type"] == "missing" else message
            parts.append(f"{variable} {message}")
        else:
            parts.append(message)
    return "invalid configuration: " + "; ".join(parts)
