"""Bulk import through the running service (the local stack holds its chDB directory; a
deployment's warehouse admits only the deployment): the CLI sends JSON Lines in chunks."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from data_pipeline.entrypoints.api.body import read_limited
from data_pipeline.entrypoints.api.deps import ContainerDep, ServiceAuth
from data_pipeline.entrypoints.api.errors import BodyTooLarge
from data_pipeline.errors import TransientError
from data_pipeline.service_layer.importer import EventImporter
from shared.topics import IMPORT_MAX_BYTES, IMPORT_PATH

router = APIRouter(tags=["operations"])


class ImportFailureBody(BaseModel):
    line: int
    reason: str


class ImportReportBody(BaseModel):
    lines: int
    loaded: int
    ignored: int
    duplicates: int
    lineItems: int
    failures: list[ImportFailureBody]


@router.post(
    IMPORT_PATH,
    response_model=ImportReportBody,
    dependencies=[ServiceAuth],
    responses={
        400: {"description": "An empty chunk"},
        401: {"description": "Missing or invalid service key"},
        413: {"description": "Chunk over 32 MiB"},
        503: {"description": "Warehouse or state store unavailable; send the chunk again"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-ndjson": {"schema": {"type": "string", "minLength": 1}}},
        }
    },
)
async def import_events(request: Request, container: ContainerDep) -> Response:
    """Load a chunk of Salla envelopes (JSON Lines) as the worker would; a line that cannot
    load is reported with its line number (within the chunk) and skipped."""
    try:
        body = await read_limited(request, IMPORT_MAX_BYTES)
    except BodyTooLarge as error:
        return JSONResponse({"detail": str(error)}, status_code=413)
    if not body.strip():
        return JSONResponse({"detail": "empty chunk: send JSON Lines"}, status_code=400)
    importer = EventImporter(container.warehouse, container.state, container.cipher)
    try:
        report = await importer.run(body.split(b"\n"))
    except TransientError as error:
        return JSONResponse({"detail": str(error)}, status_code=503)
    return JSONResponse(report.as_dict())
