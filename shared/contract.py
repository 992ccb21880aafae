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

# The public, deterministic credentials of QStash's local development server (Upstash documents
# them as dev-only). The local QStash-compatible server uses the same ones by default.
DEV_QSTASH_TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="  # noqa: S105
DEV_QSTASH_CURRENT_SIGNING_KEY = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
DEV_QSTASH_NEXT_SIGNING_KEY = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"
_PUBLIC_DEV_SECRETS = frozenset(
    {DEV_QSTASH_TOKEN, DEV_QSTASH_CURRENT_SIGNING_KEY, DEV_QSTASH_NEXT_SIGNING_KEY}
)
_MIN_SECRET_LENGTH = 16
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_CLICKHOUSE_SCHEMES = frozenset({"http", "https", "clickhouse", "clickhouses", "chdb"})


class Environment(StrEnum):
    LOCAL = "local"
    TEST = "test"
    PRODUCTION = "production"


class ConfigurationError(Exception):
    """Configuration is missing or malformed. The message is one line naming the variables."""


class PipelineSettings(BaseSettings):
    """Every environment variable the data-pipeline service reads (names are upper-cased)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    pipeline_environment: Environment = Field(
        Environment.PRODUCTION,
        description="local | test | production. Production refuses the public dev credentials.",
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
    redis_url: SecretStr | None = Field(
        None, description="redis:// or rediss:// URL of the state store; unset = embedded SQLite."
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

    @field_validator("qstash_retry_delay")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        # Deployed functions always carry every variable; an empty one means "not set".
        return value or None

    @field_validator("clickhouse_database")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError("must be a plain identifier (letters, digits, underscore)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and urlsplit(value.get_secret_value()).scheme not in (
            "redis",
            "rediss",
            "unix",
        ):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

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

    def delivery_url(self, path: str) -> str:
        """The exact URL QStash signs as `sub` for deliveries to `path`."""
        return str(self.pipeline_public_url).rstrip("/") + path

    @property
    def uses_embedded_state(self) -> bool:
        return self.redis_url is None


def env_var_names() -> list[str]:
    """Every environment variable of the contract, in declaration order."""
    return [name.upper() for name in PipelineSettings.model_fields]


def secret_env_var_names() -> frozenset[str]:
    """The variables whose values are secrets (and must be Pulumi secrets)."""
    return frozenset(
        name.upper()
        for name, field in PipelineSettings.model_fields.items()
        if _is_secret(field.annotation)
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
