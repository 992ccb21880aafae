"""Historical sync control for the app: start a backfill, poll it, resume a failed one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from data_pipeline.entrypoints.api.deps import ContainerDep, ServiceAuth
from data_pipeline.entrypoints.api.schemas import (
    JOB_ID_PATTERN,
    MERCHANT_ID_PATTERN,
    NOT_JSON,
    MerchantId,
    Problem,
    parse_merchant_id,
    unprocessable,
)
from data_pipeline.errors import TransientError
from data_pipeline.service_layer.sync import JobNotFound, SyncRefused

router = APIRouter(prefix="/api/jobs/sync", tags=["historical sync"], dependencies=[ServiceAuth])


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    merchantId: MerchantId = Field(
        description="Salla merchant (store) id.", examples=["1305146709"]
    )
    depth: Literal["12m", "24m"] = Field(
        description="Calendar months back from today (Asia/Riyadh), both ends inclusive."
    )


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobId: str = Field(pattern=JOB_ID_PATTERN)


class SyncAccepted(BaseModel):
    jobId: str
    status: str
    created: bool = Field(description="False when the merchant's running job was returned.")


class SyncStatus(BaseModel):
    jobId: str
    merchantId: str
    status: Literal["QUEUED", "RUNNING", "COMPLETED", "FAILED"]
    progress: int = Field(ge=0, le=100, description="Never decreases; 100 only when completed.")
    counts: dict[str, int] = Field(description="Entities loaded, per resource.")
    startedAt: str
    updatedAt: str
    error: str | None
    note: str | None = Field(description="Why the job is waiting (rate limit, Salla outage).")
    depth: str
    window: dict[str, str]
    position: str = Field(description="The cursor: resource, order month slice and page.")
    skipped: dict[str, int]
    requests: dict[str, int] = Field(description="Requests made to Salla, by kind.")
    finishedAt: str | None
    loadSeconds: float


@contextmanager
def _answers() -> Iterator[None]:
    """The orchestrator's refusals as HTTP answers: 404, 409, or 503 (retry later)."""
    try:
        yield
    except JobNotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(error)) from None
    except SyncRefused as error:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from None
    except TransientError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(error)) from None


@router.post(
    "/initiate",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SyncAccepted,
    summary="Start a historical sync (backfill) for a merchant",
    responses={
        200: {"model": SyncAccepted, "description": "A sync is already running: that job"},
        401: {"model": Problem, "description": "Missing or wrong PIPELINE_API_KEY"},
        409: {"model": Problem, "description": "Merchant not authorized or uninstalled"},
        503: {"model": Problem, "description": "Queue or state store unavailable; retry"},
        **NOT_JSON,
    },
)
async def initiate(body: SyncRequest, container: ContainerDep, response: Response) -> SyncAccepted:
    """Backfill the merchant's products, customers and the orders created in the last 12 or
    24 months from the Salla Admin API. Idempotent while a job runs: the same job comes back."""
    with _answers():
        job, created = await container.sync.initiate(body.merchantId, body.depth)
    if not created:
        response.status_code = status.HTTP_200_OK
    return SyncAccepted(jobId=job.job_id, status=job.status.value, created=created)


@router.get(
    "/status",
    response_model=SyncStatus,
    summary="Progress of a merchant's latest sync (or of one job)",
    responses={
        401: {"model": Problem, "description": "Missing or wrong PIPELINE_API_KEY"},
        404: {"model": Problem, "description": "No such job"},
    },
)
async def job_status(
    container: ContainerDep,
    merchantId: Annotated[
        str | None, Query(pattern=MERCHANT_ID_PATTERN, description="Salla merchant id")
    ] = None,
    jobId: Annotated[str | None, Query(pattern=JOB_ID_PATTERN)] = None,
) -> dict[str, Any]:
    """Read from the low-latency state store; cheap enough to poll every second."""
    if jobId is None and merchantId is None:
        raise unprocessable(("query", "merchantId"), "give merchantId or jobId")
    with _answers():
        if jobId is not None:
            job = await container.sync.get(jobId)
        else:
            try:
                merchant = parse_merchant_id(merchantId)
            except ValueError as error:
                raise unprocessable(("query", "merchantId"), str(error)) from None
            job = await container.sync.latest(merchant)
    return job.status_document()


@router.post(
    "/resume",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SyncAccepted,
    summary="Resume a failed (or stalled) sync from its last saved cursor",
    responses={
        401: {"model": Problem, "description": "Missing or wrong PIPELINE_API_KEY"},
        404: {"model": Problem, "description": "No such job"},
        409: {"model": Problem, "description": "Running, completed or superseded"},
        503: {"model": Problem, "description": "Queue or state store unavailable; retry"},
        **NOT_JSON,
    },
)
async def resume(body: ResumeRequest, container: ContainerDep) -> SyncAccepted:
    with _answers():
        job = await container.sync.resume(body.jobId)
    return SyncAccepted(jobId=job.job_id, status=job.status.value, created=False)
