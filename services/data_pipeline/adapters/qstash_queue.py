"""QStash through the official `qstash` SDK (async client, so the ack path never blocks).

Group commit for publishes: webhooks that arrive while a publish is in flight go out together
in one `POST /v2/batch` (one HTTP round trip and one QStash request for many events), and each
webhook is answered only when *its* entry is durably accepted. An idle service publishes at
once; a busy one amortises the HTTP cost, which dominates the ack path's CPU.

If a batch fails as a whole (or QStash reports an error entry, which the SDK surfaces as a
KeyError), every entry is retried on its own, so one bad entry never fails its neighbours. A
copy that the failed batch did enqueue comes back `deduplicated` (same dedup id) and is still
reported as a first publish.

The SDK's own timeout is 600 s and it retries connection errors with multi-second backoff;
webhook acks cannot wait that long, so every wait runs under a short deadline and a failure
becomes TransientError (the webhook answers 503 and Salla retries later).

The SDK talks HTTP through httpx; a long-running publisher with many webhooks in flight (the
local stack's front) may give it another client for that (`SdkHttpClient`): the SDK's own
requests and answers with less CPU each (httpx's client layer was a tenth of the front's CPU
per webhook). A Lambda instance answers one webhook at a time and keeps httpx.

Names are the deployment's own (QSTASH_TOPIC_PREFIX): URL groups and flow-control keys are
account-level. Every message bound for a worker carries its flow's key and parallelism
(shared.topics), so QStash keeps each kind of work within its share of the worker function.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from qstash import AsyncQStash
from qstash.errors import QStashError

from data_pipeline.adapters.queue import EventQueue, Published
from data_pipeline.errors import TransientError
from data_pipeline.flushers import Flushers
from shared.topics import CDC_EVENTS_TOPIC, EVENTS_FLOW, RAW_EVENTS_TOPIC, scoped

ACCEPTED_AT_HEADER = "X-Pipeline-Accepted-At"
MAX_BATCH_ENTRIES = 100
MAX_BATCH_BYTES = 900_000  # under the 1 MB message limit of QStash's smallest plan
# Batches in flight at once: the next batch leaves while the previous one is on the wire, so a
# webhook waits for at most one round trip before its own publish starts.
MAX_IN_FLIGHT = 2
_FAILURES = (
    QStashError,
    httpx.HTTPError,
    TimeoutError,
    TransientError,
    KeyError,
    TypeError,
    ValueError,
)


class SdkHttpClient(Protocol):
    """What the SDK's async HTTP client calls of its `httpx.AsyncClient` when publishing (the
    local front's stand-in: `devtools/qstash_aiohttp.py`)."""

    async def request(
        self,
        *,
        method: str,
        url: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: str | bytes | None = None,
    ) -> Any: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _Waiting:
    entry: dict[str, Any]
    size: int
    future: asyncio.Future[Published]


class QStashQueue(EventQueue):
    def __init__(
        self,
        *,
        token: str,
        base_url: str,
        retries: int,
        retry_delay: str | None,
        topic_prefix: str = "",
        flow_parallelism: dict[str, int] | None = None,
        publish_timeout: float = 5.0,
        http_client: SdkHttpClient | None = None,
    ) -> None:
        self.client = AsyncQStash(
            token, base_url=base_url, retry={"retries": 1, "backoff": lambda attempt: 100}
        )
        if http_client is not None:
            # The SDK builds its httpx client itself and takes no other: replaced in place.
            self.client.http._client = http_client
        self._retries = retries
        self._retry_delay = retry_delay
        self._prefix = topic_prefix
        self.raw_events_topic = scoped(topic_prefix, RAW_EVENTS_TOPIC)
        self.cdc_events_topic = scoped(topic_prefix, CDC_EVENTS_TOPIC)
        self._flows = {
            flow: {"key": scoped(topic_prefix, flow), "parallelism": parallelism}
            for flow, parallelism in (flow_parallelism or {}).items()
            if parallelism > 0
        }
        self._timeout = publish_timeout
        self._waiting: deque[_Waiting] = deque()
        self._flushers = Flushers(self._flush, limit=MAX_IN_FLIGHT)

    async def publish_raw_event(
        self, body: bytes, *, dedup_id: str, accepted_at_ms: int, sensitive: bool
    ) -> Published:
        entry: dict[str, Any] = {
            "url_group": self.raw_events_topic,
            "body": body.decode("utf-8"),  # batch bodies are JSON strings; webhooks are UTF-8
            "content_type": "application/json",
            "deduplication_id": dedup_id,
            "retries": self._retries,
            "headers": {ACCEPTED_AT_HEADER: str(accepted_at_ms)},
        }
        self._options(entry, EVENTS_FLOW)
        if sensitive:  # bodies carrying OAuth tokens are hidden from QStash logs and the DLQ API
            entry["redact"] = {"body": True}
        return await self._enqueue(entry, len(body))

    async def publish_cdc_batch(self, body: bytes, *, dedup_id: str) -> Published:
        """A batch of captured PostgreSQL changes, to the `cdc-events` topic."""
        entry: dict[str, Any] = {
            "url_group": self.cdc_events_topic,
            "body": body.decode("utf-8"),
            "content_type": "application/json",
            "deduplication_id": dedup_id,
            "retries": self._retries,
        }
        self._options(entry, EVENTS_FLOW)
        return await self._enqueue(entry, len(body))

    async def publish_to_topic(self, topic: str, body: bytes, *, dedup_id: str) -> Published:
        """A domain event to its URL group: delivered to other services (no worker flow)."""
        entry: dict[str, Any] = {
            "url_group": scoped(self._prefix, topic),
            "body": body.decode("utf-8"),
            "content_type": "application/json",
            "deduplication_id": dedup_id,
            "retries": self._retries,
        }
        if self._retry_delay:
            entry["retry_delay"] = self._retry_delay
        return await self._enqueue(entry, len(body))

    async def publish_message(
        self, url: str, body: bytes, *, dedup_id: str, flow: str
    ) -> Published:
        entry: dict[str, Any] = {
            "url": url,
            "body": body.decode("utf-8"),
            "content_type": "application/json",
            "deduplication_id": dedup_id,
            "retries": self._retries,
        }
        self._options(entry, flow)
        return await self._enqueue(entry, len(body))

    def _options(self, entry: dict[str, Any], flow: str) -> None:
        if self._retry_delay:
            entry["retry_delay"] = self._retry_delay
        if flow in self._flows:
            entry["flow_control"] = self._flows[flow]

    async def _enqueue(self, entry: dict[str, Any], size: int) -> Published:
        future: asyncio.Future[Published] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(entry, size, future))
        self._flushers.wake()
        # No timer per webhook: every batch call runs under the deadline and the flushers always
        # settle the futures they take, so this wait is bounded by the queue ahead plus one call.
        return await future

    async def _flush(self) -> None:
        while self._waiting:
            batch = self._take()
            try:
                async with asyncio.timeout(self._timeout):
                    responses = await self.client.message.batch([w.entry for w in batch])  # type: ignore[misc]
                if len(responses) != len(batch):
                    raise ValueError("batch answer does not match the request")
                for waiting, response in zip(batch, responses, strict=True):
                    _settle(waiting.future, result=_published(response))
            except _FAILURES as error:
                if len(batch) == 1:
                    _settle(batch[0].future, error=_unavailable(error))
                else:
                    await asyncio.gather(*(self._publish_alone(w) for w in batch))
            except Exception as error:  # never leave a webhook waiting on a dead flusher
                for waiting in batch:
                    _settle(waiting.future, error=_unavailable(error))
                raise

    async def _publish_alone(self, waiting: _Waiting) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                response = await self.client.message.publish(**waiting.entry)
        except _FAILURES as error:
            _settle(waiting.future, error=_unavailable(error))
            return
        published = _published(response)
        # The failed batch may have enqueued this entry already: that is not a Salla duplicate.
        _settle(waiting.future, result=Published(published.message_ids, deduplicated=False))

    def _take(self) -> list[_Waiting]:
        batch: list[_Waiting] = []
        size = 0
        while self._waiting and len(batch) < MAX_BATCH_ENTRIES:
            nxt = self._waiting[0]
            if batch and size + nxt.size > MAX_BATCH_BYTES:
                break
            batch.append(self._waiting.popleft())
            size += nxt.size
        return batch

    async def publish_step(
        self, url: str, body: bytes, *, dedup_id: str, flow: str, delay_seconds: int = 0
    ) -> Published:
        options: dict[str, Any] = {
            "url": url,
            "body": body,
            "content_type": "application/json",
            "deduplication_id": dedup_id,
            "retries": self._retries,
        }
        self._options(options, flow)
        if delay_seconds > 0:
            options["delay"] = f"{delay_seconds}s"
        try:
            async with asyncio.timeout(self._timeout):
                response = await self.client.message.publish(**options)
        except _FAILURES as error:
            raise _unavailable(error) from None
        return _published(response)

    async def ensure_topic(self, topic: str, urls: list[str]) -> None:
        """Point our URL group `topic` (unprefixed) at our endpoints (local stacks; Pulumi owns
        this in the cloud)."""
        await self.client.url_group.upsert_endpoints(
            scoped(self._prefix, topic), [{"url": url} for url in urls]
        )

    async def close(self) -> None:
        await self._flushers.wait()
        await self.client.http._client.aclose()  # the SDK has no public close


def _published(response: Any) -> Published:
    responses = response if isinstance(response, list) else [response]
    if not responses:
        raise TransientError("the raw-events topic has no endpoints to deliver to")
    return Published(
        message_ids=tuple(r.message_id for r in responses),
        deduplicated=all(r.deduplicated for r in responses),
    )


def _unavailable(error: BaseException) -> TransientError:
    if isinstance(error, TransientError):
        return error
    return TransientError(f"queue unavailable: {type(error).__name__}: {error}"[:300])


def _settle(
    future: asyncio.Future[Published],
    *,
    result: Published | None = None,
    error: BaseException | None = None,
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert result is not None
        future.set_result(result)
