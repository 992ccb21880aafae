"""The one place that turns failures into HTTP answers.

Two audiences: Salla (webhooks: 401/400/413/503, and only 200/201 count as success) and QStash
(queue deliveries: 2xx delivered, 5xx retried, 489 + `Upstash-NonRetryable-Error: true`
dead-lettered at once).
"""

from __future__ import annotations

from starlette.responses import JSONResponse

from data_pipeline.errors import InvalidPayload, PermanentError, TransientError
from data_pipeline.service_layer.ingest import Unauthenticated

NON_RETRYABLE = {"Upstash-NonRetryable-Error": "true"}


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"body exceeds {limit} bytes")


def webhook_answer(error: Exception) -> JSONResponse:
    if isinstance(error, BodyTooLarge):
        return JSONResponse({"detail": str(error)}, status_code=413)
    if isinstance(error, Unauthenticated):
        return JSONResponse({"detail": str(error)}, status_code=401)
    if isinstance(error, InvalidPayload):
        return JSONResponse({"detail": str(error)}, status_code=400)
    if isinstance(error, TransientError):
        # Never a 200 for an event that was not durably handed off: Salla retries a 503.
        return JSONResponse({"detail": "queue unavailable, retry later"}, status_code=503)
    raise error


def delivery_answer(error: Exception) -> JSONResponse:
    if isinstance(error, PermanentError):
        return JSONResponse({"error": str(error)[:1000]}, status_code=489, headers=NON_RETRYABLE)
    if isinstance(error, TransientError):
        headers = {}
        if error.retry_after is not None:
            headers["Retry-After"] = str(max(0, int(error.retry_after)))
        return JSONResponse({"error": str(error)[:1000]}, status_code=503, headers=headers)
    raise error
