"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from data_pipeline.entrypoints.api.deps import ContainerDep
from data_pipeline.errors import TransientError
from shared.topics import HEALTH_PATH

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


@router.get(HEALTH_PATH, response_model=Health, responses={503: {"model": Health}})
async def healthz(container: ContainerDep, deep: bool = False) -> Response:
    """Liveness; with `?deep=true`, also reach the warehouse and the state store."""
    if not deep:
        return JSONResponse({"status": "ok", "checks": {}})
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


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(container: ContainerDep) -> Response:
    """Prometheus metrics of this instance."""
    return Response(generate_latest(container.metrics.registry), media_type=CONTENT_TYPE_LATEST)
