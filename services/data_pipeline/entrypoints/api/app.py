"""The FastAPI application: routers per area, adapters injected from the bootstrap container.

PIPELINE_ROLE picks the routers: an intake function serves only Salla's webhooks (and
liveness), a worker everything else, `all` (local, Vercel) both. In production the interactive
docs and the OpenAPI document are not served; operations endpoints need the service key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp

from data_pipeline.bootstrap import Container, IntakeContainer, bootstrap, bootstrap_intake
from data_pipeline.entrypoints.api.intake import create_intake_app
from data_pipeline.entrypoints.api.routes import (
    dev,
    events,
    imports,
    jobs,
    ops,
    queue,
    rag,
    webhooks,
)
from shared.contract import Environment, PipelineSettings, Role, load_settings


def create_app(
    container: IntakeContainer | None = None, settings: PipelineSettings | None = None
) -> ASGIApp:
    """With no arguments, settings come from the environment (ConfigurationError if invalid).
    An intake function gets the lean intake app (entrypoints/api/intake.py)."""
    settings = container.settings if container is not None else (settings or load_settings())
    if settings.pipeline_role is Role.INTAKE:
        return create_intake_app(container or bootstrap_intake(settings))
    if container is None:
        container = bootstrap(settings)
    assert isinstance(container, Container), "a worker needs the full container"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await container.aclose()

    production = settings.pipeline_environment is Environment.PRODUCTION
    app = FastAPI(
        title="Salla data pipeline",
        docs_url=None if production else "/docs",
        redoc_url=None if production else "/redoc",
        openapi_url=None if production else "/openapi.json",
        version="0.1.0",
        summary="Salla webhooks → QStash → ClickHouse, historical sync and RAG enrichment.",
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry bridge costs ~6% of the ack path even when nothing is
        # configured; the service exports Prometheus metrics instead.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.container = container
    intake = settings.pipeline_role in (Role.ALL, Role.INTAKE)
    worker = settings.pipeline_role in (Role.ALL, Role.WORKER)
    # Hot endpoints are matched first by lean Starlette routes; see routes/webhooks.py.
    if intake:
        app.router.routes.append(webhooks.fast_route())
        app.include_router(webhooks.router)  # documents the route served above
    if worker:
        app.router.routes.extend(queue.fast_routes())
        for router in (queue.router, jobs.router, rag.router, imports.router, events.router):
            app.include_router(router)
    app.include_router(ops.router)
    if worker and not production:
        app.include_router(dev.router)
    return app
