"""Delivers due messages with QStash's semantics: signed attempts, retries, backoff, DLQ.

A 2xx delivers. 489 with `Upstash-NonRetryable-Error: true` dead-letters at once. Anything else
(including timeouts and connection errors) is retried while retries remain, after the wait the
response asked for, else the message's retry-delay expression, else QStash's default backoff;
then the message goes to the DLQ with the last response.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import secrets
from collections.abc import Callable

import aiohttp
import structlog

from data_pipeline.devtools.qstash_server.model import DeadLetter, Message, now_ms
from data_pipeline.devtools.qstash_server.signing import sign_delivery
from data_pipeline.devtools.qstash_server.store import QStashStore
from data_pipeline.devtools.qstash_server.timing import (
    compile_retry_delay,
    default_backoff,
    retry_after_seconds,
)

log = structlog.get_logger("qstash_dev")
RESPONSE_BODY_LIMIT = 64 * 1024
DEFAULT_TIMEOUT_SECONDS = 120.0


class Dispatcher:
    def __init__(
        self,
        store: QStashStore,
        signing_key: Callable[[], str],
        *,
        concurrency: int = 64,
        hold: bool = False,
    ) -> None:
        self._store = store
        self._signing_key = signing_key
        self._concurrency = concurrency
        self._hold = hold  # accept and keep messages but never deliver (for benchmarks)
        self._heap: list[tuple[int, int, str]] = []
        self._sequence = itertools.count()
        self._messages: dict[str, Message] = {}
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._runner: asyncio.Task[None] | None = None
        # aiohttp rather than httpx here: at 64 deliveries in flight, httpcore's pool bookkeeping
        # (it rescans every connection on each request) was most of this server's CPU.
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self._concurrency, limit_per_host=self._concurrency
            ),
            headers={"User-Agent": "Upstash-QStash"},
            skip_auto_headers=("Content-Type",),  # forward only the message's own Content-Type
            auto_decompress=False,
        )
        for message in self._store.load_messages():
            self.schedule(message)
        self._runner = asyncio.create_task(self._run(), name="qstash-dispatcher")

    async def stop(self) -> None:
        """Start nothing new, let in-flight deliveries finish; pending ones stay in the store."""
        if self._stopping:
            return
        self._stopping = True
        self._wakeup.set()
        if self._runner is not None:
            await self._runner
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    @property
    def pending(self) -> int:
        return len(self._messages)

    def pause(self) -> None:
        """Keep accepting messages but deliver none until `resume()` (tests drive deliveries)."""
        self._hold = True

    def resume(self) -> None:
        self._hold = False
        self._wakeup.set()

    def schedule(self, message: Message) -> None:
        self._messages[message.message_id] = message
        heapq.heappush(
            self._heap, (message.not_before_ms, next(self._sequence), message.message_id)
        )
        self._wakeup.set()

    def forget(self, message_id: str) -> Message | None:
        return self._messages.pop(message_id, None)

    def message(self, message_id: str) -> Message | None:
        return self._messages.get(message_id)

    def all_messages(self) -> list[Message]:
        return list(self._messages.values())

    # -- scheduling ----------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            due = self._pop_due()
            if due is None:
                await self._sleep_until_next()
                continue
            await self._slots.acquire()
            if self._stopping:
                self._slots.release()
                break
            task = asyncio.create_task(self._attempt(due))
            self._in_flight.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slots.release()

    def _pop_due(self) -> Message | None:
        if self._hold:
            return None
        now = now_ms()
        while self._heap and self._heap[0][0] <= now:
            not_before, _, message_id = heapq.heappop(self._heap)
            message = self._messages.get(message_id)
            if message is not None and message.not_before_ms == not_before:
                return message
        return None

    async def _sleep_until_next(self) -> None:
        timeout = None
        if self._heap and not self._hold:
            timeout = max(0.0, (self._heap[0][0] - now_ms()) / 1000)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout)

    # -- delivery ------------------------------------------------------------------------------
    async def _attempt(self, message: Message) -> None:
        headers = {name: values[-1] for name, values in message.headers.items()}
        headers.update(
            {
                "Upstash-Signature": sign_delivery(message.url, message.body, self._signing_key()),
                "Upstash-Message-Id": message.message_id,
                "Upstash-Retried": str(message.retried),
            }
        )
        if message.topic_name:
            headers["Upstash-Topic-Name"] = message.topic_name
        if message.caller_ip:
            headers["Upstash-Caller-Ip"] = message.caller_ip
        assert self._session is not None, "dispatcher not started"
        timeout = aiohttp.ClientTimeout(total=message.timeout_seconds or DEFAULT_TIMEOUT_SECONDS)
        try:
            async with self._session.request(
                message.method, message.url, data=message.body, headers=headers, timeout=timeout
            ) as response:
                status = response.status
                response_headers = {k.lower(): v for k, v in response.headers.items()}
                content = bytearray()
                async for chunk in response.content.iter_chunked(16384):
                    content += chunk
                    if len(content) >= RESPONSE_BODY_LIMIT:
                        break
        except (aiohttp.ClientError, TimeoutError) as error:
            self._failed(message, 0, {}, b"", f"{type(error).__name__}: {error}"[:300])
            return
        if 200 <= status < 300:
            self._delivered(message)
        elif status == 489 and response_headers.get("upstash-nonretryable-error") == "true":
            self._to_dlq(message, status, response_headers, bytes(content), "non-retryable error")
        else:
            self._failed(message, status, response_headers, bytes(content), f"status {status}")

    def _delivered(self, message: Message) -> None:
        if self._messages.pop(message.message_id, None) is None:
            return  # cancelled while in flight
        with self._store.transaction() as db:
            self._store.delete_message(db, message.message_id)
            self._store.log(db, message, "DELIVERED", response_status=200)

    def _failed(
        self, message: Message, status: int, headers: dict[str, str], body: bytes, error: str
    ) -> None:
        if message.message_id not in self._messages:
            return
        if message.retried >= message.max_retries:
            self._to_dlq(message, status, headers, body, error)
            return
        message.retried += 1
        wait = retry_after_seconds({k.lower(): v for k, v in headers.items()})
        if wait is None and message.retry_delay:
            wait = compile_retry_delay(message.retry_delay)(message.retried - 1) / 1000
        if wait is None:
            wait = default_backoff(message.retried)
        message.not_before_ms = now_ms() + int(wait * 1000)
        with self._store.transaction() as db:
            self._store.save_messages(db, [message], state=None)
            self._store.log(db, message, "ERROR", error=error, response_status=status)
            self._store.log(db, message, "RETRY", next_delivery_ms=message.not_before_ms)
        self.schedule(message)

    def _to_dlq(
        self, message: Message, status: int, headers: dict[str, str], body: bytes, error: str
    ) -> None:
        self._messages.pop(message.message_id, None)
        letter = DeadLetter(
            dlq_id=f"{now_ms()}-{secrets.randbelow(10**6)}",
            message=message,
            response_status=status,
            response_headers={name: [value] for name, value in headers.items()},
            response_body=body,
            failed_at_ms=now_ms(),
        )
        with self._store.transaction() as db:
            self._store.delete_message(db, message.message_id)
            self._store.add_dead_letter(db, letter)
            self._store.log(db, message, "FAILED", error=error, response_status=status)
        log.info("dead_lettered", message_id=message.message_id, status=status, error=error)
