"""QStash through the official `qstash` SDK (async client, so the ack path never blocks).

The SDK's own timeout is 600 s and it retries connection errors with multi-second backoff;
webhook acks cannot wait that long, so every publish runs under a short overall deadline and a
failure becomes TransientError (the webhook answers 503 and Salla retries later).
"""

from __future__ import annotations

import asyncio

import httpx
from qstash import AsyncQStash
from qstash.errors import QStashError

from data_pipeline.adapters.queue import EventQueue, Published
from data_pipeline.errors import TransientError
from shared.topics import RAW_EVENTS_TOPIC

ACCEPTED_AT_HEADER = "X-Pipeline-Accepted-At"


class QStashQueue(EventQueue):
    def __init__(
        self,
        *,
        token: str,
        base_url: str,
        retries: int,
        retry_delay: str | None,
        publish_timeout: float = 5.0,
    ) -> None:
        self.client = AsyncQStash(
            token, base_url=base_url, retry={"retries": 1, "backoff": lambda attempt: 100}
        )
        self._retries = retries
        self._retry_delay = retry_delay
        self._timeout = publish_timeout

    async def publish_raw_event(
        self, body: bytes, *, dedup_id: str, accepted_at_ms: int, sensitive: bool
    ) -> Published:
        try:
            async with asyncio.timeout(self._timeout):
                responses = await self.client.message.publish(
                    url_group=RAW_EVENTS_TOPIC,
                    body=body,
                    content_type="application/json",
                    deduplication_id=dedup_id,
                    retries=self._retries,
                    retry_delay=self._retry_delay,
                    headers={ACCEPTED_AT_HEADER: str(accepted_at_ms)},
                    # Bodies carrying OAuth tokens are hidden from QStash logs and DLQ listings.
                    redact={"body": True} if sensitive else None,
                )
        except (QStashError, httpx.HTTPError, TimeoutError, ValueError) as error:
            raise TransientError(
                f"queue unavailable: {type(error).__name__}: {error}"[:300]
            ) from error
        if not isinstance(responses, list) or not responses:
            raise TransientError(f"topic {RAW_EVENTS_TOPIC} has no endpoints to deliver to")
        return Published(
            message_ids=tuple(r.message_id for r in responses),
            deduplicated=all(r.deduplicated for r in responses),
        )

    async def ensure_topic(self, topic: str, urls: list[str]) -> None:
        """Point a URL group at our endpoints (local stacks; Pulumi owns this in the cloud)."""
        await self.client.url_group.upsert_endpoints(topic, [{"url": url} for url in urls])

    async def close(self) -> None:
        await self.client.http._client.aclose()
