"""The FastAPI application: routers per area, adapters injected from the bootstrap container."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from data_pipeline.bootstrap import Container, bootstrap
from data_pipeline.entrypoints.api.routes import dev, jobs, ops, queue, rag, webhooks
from shared.contract import Environment, PipelineSettings, load_settings


def create_app(
    container: Container | None = None, settings: PipelineSettings | None = None
) -> FastAPI:
    """With no arguments, settings come from the environment (ConfigurationError if invalid)."""
    if container is None:
        container = bootstrap(settings or load_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await container.aclose()

    app = FastAPI(
        title="Salla data pipeline",
        version="0.1.0",
        summary="Salla webhooks → QStash → ClickHouse, historical sync and RAG enrichment.",
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry bridge costs ~6% of the ack path even when nothing is
        # configured; the service exports Prometheus metrics instead.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.container = container
    # Hot endpoints are matched first by lean Starlette routes; see routes/webhooks.py.
    app.router.routes.extend([webhooks.fast_route(), *queue.fast_routes()])
    app.include_router(webhooks.router)
    app.include_router(queue.router)
    app.include_router(jobs.router)
    app.include_router(rag.router)
    app.include_router(ops.router)
    if container.settings.pipeline_environment is not Environment.PRODUCTION:
        app.include_router(dev.router)
    return app
