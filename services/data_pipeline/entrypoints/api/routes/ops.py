"""Liveness, readiness and metrics.

Liveness is open and cheap. In production the deep check (it reaches, and so wakes, an
idle-scaled warehouse, and reports dependency errors) and /metrics need the service key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from data_pipeline.entrypoints.api.deps import ContainerDep, bearer, check_api_key
from data_pipeline.errors import TransientError
from shared.contract import Environment
from shared.topics import HEALTH_PATH, MIGRATE_PATH

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _guard(container: ContainerDep, credentials: Credentials) -> None:
    if container.settings.pipeline_environment is Environment.PRODUCTION:
        check_api_key(container, credentials)


router = APIRouter(tags=["operations"])
# The key is asked for in production only: OpenAPI's way to say authentication is optional.
OPTIONAL_AUTH: dict = {"security": [{}, {"HTTPBearer": []}]}


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


@router.get(
    HEALTH_PATH,
    response_model=Health,
    responses={
        401: {"description": "Deep check without the service key (production)"},
        503: {"model": Health},
    },
    openapi_extra=OPTIONAL_AUTH,
)
async def healthz(
    container: ContainerDep, credentials: Credentials, deep: bool = False
) -> Response:
    """Liveness; with `?deep=true` (service key in production), also reach the warehouse and
    the state store."""
    if not deep:
        return JSONResponse({"status": "ok", "checks": {}})
    _guard(container, credentials)
    checks: dict[str, str] = {}
    try:
        await run_in_threadpool(container.warehouse.ping)
        checks["warehouse"] = "ok"
    except TransientError as error:
        checks["warehouse"] = str(error)[:200]
    try:
        await container.state.ping()
        checks["state"] = "ok"
    except TransientError as error:
        checks["state"] = str(error)[:200]
    healthy = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", "checks": checks},
        status_code=200 if healthy else 503,
    )


_MIGRATE_SCHEMA = {
    "type": "object",
    "required": ["operation", "schemaVersion", "adminUrl", "writerPassword", "readerPassword"],
    "properties": {
        "operation": {"const": "migrate-warehouse"},
        "schemaVersion": {"type": "integer"},
        "adminUrl": {"type": "string", "format": "password"},
        "writerPassword": {"type": "string", "format": "password"},
        "readerPassword": {"type": "string", "format": "password"},
    },
}


class MigrationDone(BaseModel):
    schemaVersion: int
    applied: list[str]
    statements: int
    waitedSeconds: float


@router.post(
    MIGRATE_PATH,
    response_model=MigrationDone,
    responses={
        401: {"description": "Missing or invalid service key"},
        422: {"description": "Not a migration request, or for another schema version"},
        503: {"description": "Warehouse unreachable or another migration holds the lease"},
    },
    # Parsed by hand, so that a validation error can never echo the credentials back.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _MIGRATE_SCHEMA}},
        }
    },
)
async def migrate_warehouse(
    request: Request, container: ContainerDep, credentials: Credentials
) -> Response:
    """Converge the warehouse schema and users (deployments without a migrator function, such
    as Vercel, call this once the new code is live; service key required)."""
    from data_pipeline.entrypoints.migrate_handler import InvalidEvent, parse_event
    from data_pipeline.errors import PermanentError
    from data_pipeline.service_layer.schema import converge_warehouse

    check_api_key(container, credentials)
    try:
        migration = parse_event(await request.json())  # ValueError: not JSON
        report = await converge_warehouse(
            migration,
            database=container.settings.clickhouse_database,
            state=container.state,
            wait_seconds=20,
        )
    except (InvalidEvent, PermanentError, ValueError) as error:
        return JSONResponse({"error": str(error)}, status_code=422)
    except TransientError as error:
        return JSONResponse({"error": str(error)}, status_code=503)
    return JSONResponse(
        {
            "schemaVersion": report.schema_version,
            "applied": report.applied,
            "statements": report.statements,
            "waitedSeconds": round(report.waited_seconds, 1),
        }
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}},
        401: {"description": "Missing or invalid service key (production)"},
    },
    openapi_extra=OPTIONAL_AUTH,
)
async def metrics(container: ContainerDep, credentials: Credentials) -> Response:
    """Prometheus metrics of this instance (service key in production)."""
    _guard(container, credentials)
    return Response(generate_latest(container.metrics.registry), media_type=CONTENT_TYPE_LATEST)
