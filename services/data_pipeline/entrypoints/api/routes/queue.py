"""Queue consumers: endpoints QStash delivers to. Every delivery is signature-checked first."""

from __future__ import annotations

import asyncio
import math
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.routing import Route

from data_pipeline.adapters.qstash_queue import ACCEPTED_AT_HEADER
from data_pipeline.adapters.qstash_signature import InvalidSignature
from data_pipeline.bootstrap import Container
from data_pipeline.domain.envelope import body_sha256, decode_json_object
from data_pipeline.entrypoints.api.body import read_limited
from data_pipeline.entrypoints.api.errors import delivery_answer
from data_pipeline.errors import InvalidPayload, PermanentError, TransientError
from data_pipeline.service_layer.rag import EmbedRequest
from data_pipeline.service_layer.sync import StepBusy
from shared.topics import (
    CDC_DRAIN_PATH,
    CDC_EVENT_PATH,
    EMBED_FLOW,
    EMBED_PATH,
    EVENTS_FLOW,
    PROCESS_EVENT_PATH,
    SYNC_STEP_PATH,
)

router = APIRouter(tags=["queue"])
MAX_DELIVERY_BYTES = 2 * 1024 * 1024
MAX_STEP_BYTES = 4096  # a step is {"jobId", "seq"}
MAX_EMBED_BYTES = 64 * 1024  # up to 500 product and 500 order ids
MIN_REQUEUE_SECONDS = 30
MAX_CDC_BYTES = 1024 * 1024  # a batch is cut at 600 kB by the capture


class DeliveryResult(BaseModel):
    model_config = ConfigDict(extra="allow")  # the embed step adds its document counts

    outcome: str


class DeliveryError(BaseModel):
    error: str


def verify_delivery(container: Container, raw: bytes, signature: str | None, path: str) -> bool:
    """QStash's JWT, checked against the exact delivery URL and the raw body, before parsing."""
    if not signature:
        return False
    try:
        container.receiver.verify(
            signature=signature, body=raw, url=container.settings.delivery_url(path)
        )
    except InvalidSignature:
        return False
    return True


async def verified_delivery(
    request: Request, container: Container, path: str, limit: int
) -> bytes | Response:
    """The raw body of a genuine QStash delivery to `path`, or the answer refusing it."""
    try:
        raw = await read_limited(request, limit)
    except Exception:
        container.metrics.deliveries_rejected.labels("too_large").inc()
        return JSONResponse({"error": "delivery too large"}, status_code=413)
    if not verify_delivery(container, raw, request.headers.get("upstash-signature"), path):
        container.metrics.deliveries_rejected.labels("signature").inc()
        return JSONResponse({"error": "invalid or missing Upstash-Signature"}, status_code=401)
    return raw


@router.post(
    PROCESS_EVENT_PATH,
    response_model=DeliveryResult,
    summary="Process a raw Salla event (QStash delivery)",
    responses={
        401: {"model": DeliveryError, "description": "Missing or invalid Upstash-Signature"},
        489: {"model": DeliveryError, "description": "Event can never load; QStash dead-letters"},
        503: {"model": DeliveryError, "description": "Dependency unavailable; QStash retries"},
    },
)
async def process_event(request: Request) -> Response:
    """Verify QStash's signature, transform the Salla event and load it idempotently."""
    container: Container = request.app.state.container  # hot path: no DI (see webhooks.py)
    metrics = container.metrics
    raw = await verified_delivery(request, container, PROCESS_EVENT_PATH, MAX_DELIVERY_BYTES)
    if isinstance(raw, Response):
        return raw
    message_id = request.headers.get("upstash-message-id", "")
    accepted_at = request.headers.get(ACCEPTED_AT_HEADER, "")
    try:
        outcome = await container.processor.process(
            raw,
            message_id=message_id,
            accepted_at_ms=int(accepted_at) if accepted_at.isdigit() else None,
        )
    except PermanentError as error:
        await container.processor.dead_letter(raw, message_id=message_id, reason=str(error))
        return delivery_answer(error)
    except TransientError as error:
        metrics.delivery_failures.labels("transient").inc()
        if _is_final_attempt(request, container):
            await container.processor.dead_letter(raw, message_id=message_id, reason=str(error))
        return delivery_answer(error)
    return JSONResponse({"outcome": outcome})


@router.post(
    SYNC_STEP_PATH,
    response_model=DeliveryResult,
    summary="Run one historical-sync step (QStash delivery)",
    responses={
        401: {"model": DeliveryError, "description": "Missing or invalid Upstash-Signature"},
        489: {"model": DeliveryError, "description": "Malformed step or unknown job"},
        503: {"model": DeliveryError, "description": "Warehouse or state store down; retried"},
    },
)
async def sync_step(request: Request) -> Response:
    """Verify QStash's signature, then run the step `{jobId, seq}` if it is the job's current
    one: read a page from Salla, load it, save the cursor, publish the next step."""
    container: Container = request.app.state.container
    raw = await verified_delivery(request, container, SYNC_STEP_PATH, MAX_STEP_BYTES)
    if isinstance(raw, Response):
        return raw
    try:
        job_id, seq = parse_step(raw)
    except InvalidPayload as error:
        return delivery_answer(error)
    try:
        outcome = await container.sync.run_step(
            job_id, seq, message_id=request.headers.get("upstash-message-id", "")
        )
    except PermanentError as error:
        return delivery_answer(error)
    except StepBusy:
        # Never retried in place: a dead lease holder would outlast the retries (see
        # SyncOrchestrator.requeue_busy). A copy comes back later; this delivery is done.
        try:
            outcome = await container.sync.requeue_busy(job_id, seq)
        except TransientError as error:
            return delivery_answer(error)
        return JSONResponse({"outcome": outcome})
    except TransientError as error:
        container.metrics.delivery_failures.labels("sync").inc()
        if _is_final_attempt(request, container):
            await container.sync.fail(job_id, seq, f"step failed after all retries: {error}")
        return delivery_answer(error)
    return JSONResponse({"outcome": outcome})


@router.post(
    EMBED_PATH,
    response_model=DeliveryResult,
    summary="Embed changed products and orders into the vector index (QStash delivery)",
    responses={
        401: {"model": DeliveryError, "description": "Missing or invalid Upstash-Signature"},
        489: {"model": DeliveryError, "description": "Malformed message; QStash dead-letters"},
        503: {
            "model": DeliveryError,
            "description": "Embeddings, vectors or warehouse unavailable, or documents busy; "
            "retried after Retry-After",
        },
    },
)
async def embed(request: Request) -> Response:
    """Verify QStash's signature, then bring the announced products' and orders' vectors in
    line with the warehouse: embed what changed, delete what was deleted."""
    container: Container = request.app.state.container
    raw = await verified_delivery(request, container, EMBED_PATH, MAX_EMBED_BYTES)
    if isinstance(raw, Response):
        return raw
    try:
        embed_request = EmbedRequest.parse(raw)
    except InvalidPayload as error:
        return delivery_answer(error)
    if container.rag is None:  # RAG was switched off after the message was queued
        return JSONResponse({"outcome": "rag disabled"})
    try:
        report = await container.rag.indexer.index(embed_request)
    except PermanentError as error:
        return delivery_answer(error)
    except TransientError as error:
        container.metrics.delivery_failures.labels("embed").inc()
        if _is_final_attempt(request, container):
            return await _requeue_embed(container, raw, request, error)
        return delivery_answer(error)
    for outcome, count in report.as_dict().items():
        if count:
            container.metrics.rag_documents.labels(outcome).inc(count)
    return JSONResponse({"outcome": "indexed", **report.as_dict()})


async def _requeue_embed(
    container: Container, raw: bytes, request: Request, error: TransientError
) -> Response:
    """An outage longer than QStash's retries: publish a fresh copy due after the pause rather
    than dead-letter it, so the index catches up by itself once embeddings are back."""
    message_id = request.headers.get("upstash-message-id", "") or body_sha256(raw)
    delay = max(MIN_REQUEUE_SECONDS, math.ceil(error.retry_after or 0))
    try:
        await container.queue.publish_step(
            container.settings.delivery_url(EMBED_PATH),
            raw,
            dedup_id=f"embed-requeue-{message_id}",
            flow=EMBED_FLOW,
            delay_seconds=delay,
        )
    except TransientError:
        return delivery_answer(error)  # QStash dead-letters it; `dlq retry` brings it back
    container.metrics.rag_documents.labels("requeued").inc()
    return JSONResponse({"outcome": "requeued", "delaySeconds": delay})


def parse_step(raw: bytes) -> tuple[str, int]:
    document = decode_json_object(raw)
    job_id, seq = document.get("jobId"), document.get("seq")
    if not isinstance(job_id, str) or not 0 < len(job_id) <= 64:
        raise InvalidPayload("step: jobId must be a non-empty string")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise InvalidPayload("step: seq must be a non-negative integer")
    return job_id, seq


def _is_final_attempt(request: Request, container: Container) -> bool:
    retried = request.headers.get("upstash-retried", "0")
    return retried.isdigit() and int(retried) >= container.settings.qstash_retries


def fast_routes() -> list[Route]:
    """Serving routes for the delivery endpoints, registered ahead of the documented ones."""
    return [Route(PROCESS_EVENT_PATH, process_event, methods=["POST"])]


@router.post(
    CDC_EVENT_PATH,
    response_model=DeliveryResult,
    summary="Apply a batch of captured PostgreSQL changes (QStash delivery)",
    responses={
        401: {"model": DeliveryError, "description": "Missing or invalid Upstash-Signature"},
        489: {"model": DeliveryError, "description": "Batch can never load; QStash dead-letters"},
        503: {"model": DeliveryError, "description": "Warehouse unavailable; QStash retries"},
    },
)
async def cdc_event(request: Request) -> Response:
    """Verify QStash's signature, then load the batch into the captured tables' versioned
    storage, or read a snapshot's key range from PostgreSQL and load it (idempotent: a
    redelivered batch or range stores nothing new)."""
    from data_pipeline.service_layer.cdc import apply_delivery

    container: Container = request.app.state.container
    raw = await verified_delivery(request, container, CDC_EVENT_PATH, MAX_CDC_BYTES)
    if isinstance(raw, Response):
        return raw
    sink = container.cdc
    try:
        if sink is None:
            raise PermanentError("change data capture needs the ClickHouse warehouse")
        message = decode_json_object(raw)
        applied = await asyncio.to_thread(apply_delivery, container.settings, sink, message)
    except PermanentError as error:
        container.metrics.delivery_failures.labels("permanent").inc()
        return delivery_answer(error)
    except TransientError as error:
        container.metrics.delivery_failures.labels("transient").inc()
        return delivery_answer(error)
    for (table, op), count in applied.counts.items():
        container.metrics.cdc_changes.labels(table, op).inc(count)
    if applied.newest_commit is not None:
        lag = time.time() - applied.newest_commit.timestamp()
        container.metrics.cdc_lag_seconds.set(max(0.0, lag))
    return JSONResponse({"outcome": "loaded", "changes": sum(applied.counts.values())})


@router.post(
    CDC_DRAIN_PATH,
    response_model=DeliveryResult,
    summary="Drain the PostgreSQL replication slot once (QStash schedule)",
    responses={
        401: {"model": DeliveryError, "description": "Missing or invalid Upstash-Signature"},
        489: {"model": DeliveryError, "description": "CDC is off or misconfigured"},
        503: {"model": DeliveryError, "description": "PostgreSQL or QStash unavailable"},
    },
)
async def cdc_drain(request: Request) -> Response:
    """Read up to a bound of the slot's changes, publish them to `cdc-events`, advance the slot;
    while more is pending, publish the next drain at once (serverless functions cannot hold a
    replication connection, so a schedule starts the chain)."""
    from data_pipeline.service_layer.cdc import DRAIN_CHANGES, capture_from

    container: Container = request.app.state.container
    raw = await verified_delivery(request, container, CDC_DRAIN_PATH, MAX_STEP_BYTES)
    if isinstance(raw, Response):
        return raw
    owner = request.headers.get("upstash-message-id", "") or "drain"
    try:
        capture = capture_from(
            container.settings, container.queue, container.state, owner, container.metrics
        )
        report = await capture.drain(DRAIN_CHANGES)
        if report.changes >= DRAIN_CHANGES and report.advanced_to is not None:
            await container.queue.publish_step(
                container.settings.delivery_url(CDC_DRAIN_PATH),
                b"{}",
                dedup_id=f"cdc-drain-{report.advanced_to}",
                flow=EVENTS_FLOW,  # the flow its batches take (the embed flow is RAG's share)
            )
    except (PermanentError, TransientError) as error:
        return delivery_answer(error)
    return JSONResponse(
        {"outcome": "drained", "changes": report.changes, "batches": report.batches}
    )
