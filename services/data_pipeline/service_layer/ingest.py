"""WebhookHandler: verify a Salla webhook, hand the raw body to QStash, acknowledge.

Checks run cheapest first and nothing is published unless the signature is valid. The body is
published byte for byte (the worker re-verifies nothing from Salla, but archives exactly what
arrived); its SHA-256 is the deduplication id, because Salla sends no event id.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from data_pipeline.adapters.queue import EventQueue
from data_pipeline.domain.envelope import body_sha256, check_envelope_shape, decode_json_object
from data_pipeline.domain.webhook_auth import Strategy, is_authentic
from data_pipeline.errors import PipelineError, TransientError
from data_pipeline.observability.metrics import PipelineMetrics
from shared.topics import RAW_EVENTS_TOPIC

log = structlog.get_logger("ingress")


class Unauthenticated(PipelineError):
    """Missing or invalid Salla signature/token."""


@dataclass(frozen=True, slots=True)
class Acceptance:
    event: str
    body_sha256: str
    message_ids: tuple[str, ...]
    deduplicated: bool


class WebhookIngress:
    def __init__(
        self, queue: EventQueue, metrics: PipelineMetrics, *, secret: bytes, strategy: Strategy
    ) -> None:
        self._queue = queue
        self._metrics = metrics
        self._secret = secret
        self._strategy = strategy

    async def accept(self, raw: bytes, headers: Mapping[str, str]) -> Acceptance:
        """Raises Unauthenticated, InvalidPayload or TransientError (queue unavailable)."""
        if not is_authentic(raw, headers, secret=self._secret, strategy=self._strategy):
            raise Unauthenticated("invalid or missing Salla webhook signature")
        document = decode_json_object(raw)
        check_envelope_shape(document)
        digest = body_sha256(raw)
        event = document["event"]
        try:
            published = await self._queue.publish_raw_event(
                raw,
                dedup_id=digest,
                accepted_at_ms=int(time.time() * 1000),
                sensitive=event.startswith("app."),
            )
        except TransientError:
            self._metrics.queue_publish_failures.labels(RAW_EVENTS_TOPIC).inc()
            raise
        self._metrics.webhooks_accepted.inc()
        if published.deduplicated:
            # QStash will not deliver this copy: it is settled here, at the ingress.
            self._metrics.settle("duplicate")
        # DEBUG: the ack path is hot and the accepted counter already counts these.
        log.debug(
            "webhook_accepted",
            salla_event=event,
            merchant=document["merchant"],
            body_sha256=digest,
            deduplicated=published.deduplicated,
        )
        return Acceptance(event, digest, published.message_ids, published.deduplicated)
