"""AWS Lambda entrypoint: the FastAPI app behind API Gateway (HTTP API) through Mangum.

Built once per cold start. Missing or malformed configuration is reported as one log line and
the cold start fails, so the function never answers a request half-configured. With
PIPELINE_METRICS=emf the metrics of each invocation go to the function's log as CloudWatch
Embedded Metric Format once the response is ready.
"""

from __future__ import annotations

import gc
from typing import Any

from mangum import Mangum

from data_pipeline.observability.emf import EmfExporter
from data_pipeline.observability.logging import refuse_cold_start
from shared.contract import ConfigurationError, PipelineSettings, Role, load_settings


def _app(settings: PipelineSettings) -> Any:
    if settings.pipeline_role is Role.INTAKE:  # no FastAPI, no warehouse, no Redis: see intake.py
        from data_pipeline.bootstrap import bootstrap_intake
        from data_pipeline.entrypoints.api.intake import create_intake_app

        return create_intake_app(bootstrap_intake(settings))
    from data_pipeline.entrypoints.api.app import create_app

    return create_app(settings=settings)


def _build() -> Any:
    try:
        settings = load_settings()
    except ConfigurationError as error:
        refuse_cold_start("lambda", str(error))
    app = _app(settings)
    # lifespan off: Lambda freezes the process between invocations; nothing to open or close.
    serve = Mangum(app, lifespan="off")
    if settings.pipeline_metrics != "emf":
        return serve
    exporter = EmfExporter(
        app.state.container.metrics.registry,
        deployment=settings.pipeline_deployment,
        role=settings.pipeline_role.value,
    )

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            return serve(event, context)
        finally:
            exporter.flush()

    return handle


handler = _build()
# What the cold start made lives as long as the instance: out of the cyclic GC's sight, a full
# collection during a request walks only what requests made (as the local servers do:
# entrypoints/cli/stack.py). Frozen objects are still freed when no longer referenced.
gc.freeze()
