"""The migrator function: converges the warehouse when the deployment invokes it.

`pulumi up` does not connect to ClickHouse itself (the allow list admits the deployment's NAT
address, not the machine or CI runner running Pulumi). It declares an `aws.lambda_.Invocation`
of this function instead, which runs inside the deployment's VPC with the new bundle. The event
carries the admin connection (a Pulumi secret, never stored in the function's environment) and
the schema version the program expects:

    {"operation": "migrate-warehouse", "schemaVersion": 3, "adminUrl": "https://default:…@…",
     "writerPassword": "…", "readerPassword": "…"}

It answers {"schemaVersion", "applied", "statements", "waitedSeconds"}; any failure raises, so
the invocation, and with it `pulumi up`, fails with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from data_pipeline.observability.logging import configure_logging, refuse_cold_start
from data_pipeline.service_layer.schema import MigrationRequest, SqlClient, converge_warehouse
from shared.contract import ConfigurationError, MigratorSettings, load_migrator_settings

log = structlog.get_logger("migrator")


class MigrateEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    operation: Literal["migrate-warehouse"]
    schema_version: int = Field(alias="schemaVersion", ge=1)
    admin_url: SecretStr = Field(alias="adminUrl")
    writer_password: SecretStr = Field(alias="writerPassword", min_length=16)
    reader_password: SecretStr = Field(alias="readerPassword", min_length=16)


class InvalidEvent(ValueError):
    """The invocation is not a migration request; the message names what is wrong."""


def parse_event(event: Any) -> MigrationRequest:
    try:
        parsed = MigrateEvent.model_validate(event)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in problem['loc']) or 'event'}: {problem['msg']}"
            for problem in error.errors(include_url=False, include_input=False)
        )
        raise InvalidEvent(f"not a migration request: {problems}") from None
    return MigrationRequest(
        schema_version=parsed.schema_version,
        admin_url=parsed.admin_url.get_secret_value(),
        writer_password=parsed.writer_password.get_secret_value(),
        reader_password=parsed.reader_password.get_secret_value(),
    )


async def migrate(
    event: Any,
    settings: MigratorSettings,
    *,
    connect: Callable[[str], SqlClient] | None = None,
) -> dict[str, Any]:
    from data_pipeline.adapters.redis_state import RedisStateStore

    request = parse_event(event)
    state = RedisStateStore(settings.redis_url.get_secret_value())
    try:
        report = await converge_warehouse(
            request, database=settings.clickhouse_database, state=state, connect=connect
        )
    finally:
        await state.close()
    log.info(
        "warehouse_converged",
        schema_version=report.schema_version,
        applied=report.applied,
        waited_seconds=round(report.waited_seconds, 1),
    )
    return {
        "schemaVersion": report.schema_version,
        "applied": report.applied,
        "statements": report.statements,
        "waitedSeconds": round(report.waited_seconds, 1),
    }


def _settings() -> MigratorSettings:
    try:
        settings = load_migrator_settings()
    except ConfigurationError as error:
        refuse_cold_start("migrator", str(error))
    configure_logging(settings.log_level)
    return settings


def handler(event: Any, context: Any) -> dict[str, Any]:
    return asyncio.run(migrate(event, _settings()))
