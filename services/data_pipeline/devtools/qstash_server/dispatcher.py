"""Delivers due messages with QStash's semantics: signed attempts, retries, backoff, DLQ,
queues, flow control and callbacks.

A 2xx delivers. 489 with `Upstash-NonRetryable-Error: true` dead-letters at once. Anything else
(including timeouts and connection errors) is retried while retries remain, after the wait the
response asked for, else the message's retry-delay expression, else QStash's default backoff;
then the message goes to the DLQ with the last response. Queue lanes and flow-control gates
(gates.py) decide what may start; a callback message follows every attempt of a message that
asked for one, a failure callback its final failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import aiohttp
import structlog

from data_pipeline.devtools.qstash_server.callbacks import callback_message
from data_pipeline.devtools.qstash_server.gates import START, FlowGate, QueueLane
from data_pipeline.devtools.qstash_server.model import DeadLetter, Message, Queue, now_ms
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


@dataclass(frozen=True)
class Response:
    status: int  # 0: no HTTP response (connection error, timeout)
    headers: dict[str, str]
    body: bytes
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300

    @property
    def non_retryable(self) -> bool:
        return self.status == 489 and self.headers.get("upstash-nonretryable-error") == "true"


class Dispatcher:
    def __init__(
        self,
        store: QStashStore,
        signing_key: Callable[[], str],
        *,
        concurrency: int = 64,
        hold: bool = False,
        routes: dict[str, str] | None = None,
        clock_skew_seconds: int = 0,
    ) -> None:
        self._store = store
        self._clock_skew = clock_skew_seconds
        self._signing_key = signing_key
        self.concurrency = concurrency
        self._hold = hold  # accept and keep messages but never deliver (for benchmarks)
        # Destination prefixes delivered elsewhere (a local stand-in for an external host); the
        # signature still names the original URL.
        self._routes = sorted((routes or {}).items(), key=lambda item: -len(item[0]))
        self._heap: list[tuple[int, int, str]] = []
        self._tickets: dict[str, int] = {}  # message id → its live heap entry
        self._counter = itertools.count()
        self._messages: dict[str, Message] = {}
        self.lanes: dict[str, QueueLane] = {}
        self.gates: dict[str, FlowGate] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._runner: asyncio.Task[None] | None = None
        self.on_finished: Callable[[Message, bool], None] | None = None  # (message, delivered)
        # aiohttp rather than httpx here: at 64 deliveries in flight, httpcore's pool bookkeeping
        # (it rescans every connection on each request) was most of this server's CPU.
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.concurrency),
            headers={"User-Agent": "Upstash-QStash"},
            skip_auto_headers=("Content-Type",),  # forward only the message's own Content-Type
            auto_decompress=False,
        )
        for queue in self._store.queues():
            self.lanes[queue.name] = QueueLane(queue)
        for key, settings in self._store.flow_settings().items():
            self.gates[key] = FlowGate(key, **settings)
        self.submit(self._store.load_messages())
        self._runner = asyncio.create_task(self._run(), name="qstash-dispatcher")

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Start nothing new and give in-flight deliveries `grace_seconds` to finish; any still
        running are abandoned and, like every other pending message, stay in the store to be
        delivered after the next start (at-least-once)."""
        if self._stopping:
            return
        self._stopping = True
        self._wakeup.set()
        for timer in self._timers.values():
            timer.cancel()
        if self._runner is not None:
            await self._runner
        if self._in_flight:
            _, late = await asyncio.wait(set(self._in_flight), timeout=grace_seconds)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    @property
    def pending(self) -> int:
        return len(self._messages)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def pause(self) -> None:
        """Keep accepting messages but deliver none until `resume()` (tests drive deliveries)."""
        self._hold = True

    def resume(self) -> None:
        self._hold = False
        self._wakeup.set()

    # -- messages ------------------------------------------------------------------------------
    def submit(self, messages: Iterable[Message]) -> None:
        """Newly accepted (or, at start-up, still pending) messages, already in the store."""
        touched: set[str] = set()
        for message in messages:
            self._messages[message.message_id] = message
            if message.flow_control is not None:
                self.gate(message.flow_control.key).track(message.flow_control)
            if message.holds_queue:
                self.lane(message.holds_queue).active.add(message.message_id)
                self._push(message)
            elif message.queue_name:
                self.lane(message.queue_name).backlog.append(message.message_id)
                touched.add(message.queue_name)
            else:
                self._push(message)
        for name in touched:
            self._activate(self.lanes[name])

    def message(self, message_id: str) -> Message | None:
        """A pending message, or a finished one still retained."""
        pending = self._messages.get(message_id)
        return pending if pending is not None else self._store.finished_message(message_id)

    def all_messages(self) -> list[Message]:
        return list(self._messages.values())

    def cancel(self, message_id: str) -> bool:
        message = self._messages.get(message_id)
        if message is None:
            return False
        with self._store.transaction() as db:
            self._store.delete_message(db, message_id)
            self._store.log(db, message, "CANCEL_REQUESTED")
            self._store.log(db, message, "CANCELED")
        self._finish(message, delivered=False)
        return True

    # -- queues --------------------------------------------------------------------------------
    def lane(self, name: str) -> QueueLane:
        """The queue's lane; enqueueing to a missing queue creates it (parallelism 1)."""
        lane = self.lanes.get(name)
        if lane is None:
            lane = self.lanes[name] = QueueLane(Queue(name))
            with self._store.transaction() as db:
                self._store.save_queue(db, lane.queue)
        return lane

    def upsert_queue(self, name: str, parallelism: int, paused: bool) -> None:
        lane = self.lane(name)
        lane.queue.parallelism, lane.queue.paused = parallelism, paused
        lane.queue.updated_at_ms = now_ms()
        self._save_queue(lane)

    def set_queue_paused(self, name: str, paused: bool) -> bool:
        lane = self.lanes.get(name)
        if lane is None:
            return False
        lane.queue.paused = paused
        lane.queue.updated_at_ms = now_ms()
        self._save_queue(lane)
        return True

    def delete_queue(self, name: str) -> None:
        lane = self.lanes.get(name)
        if lane is None:
            return
        for message_id in [*lane.backlog, *lane.active]:
            self.cancel(message_id)
        with self._store.transaction() as db:
            self._store.delete_queue(db, name)
        self.lanes.pop(name, None)

    def _save_queue(self, lane: QueueLane) -> None:
        with self._store.transaction() as db:
            self._store.save_queue(db, lane.queue)
        self._activate(lane)

    def _activate(self, lane: QueueLane) -> None:
        for message_id in lane.activate():
            self._push(self._messages[message_id])

    # -- flow control --------------------------------------------------------------------------
    def gate(self, key: str) -> FlowGate:
        gate = self.gates.get(key)
        if gate is None:
            gate = self.gates[key] = FlowGate(key)
        return gate

    def changed_gate(self, gate: FlowGate) -> None:
        """After pause/resume/pin/unpin/reset: persist the settings, start what may start."""
        self._store.save_flow_settings(gate.key, gate.settings_json())
        self._drain(gate)

    def _admit(self, message: Message) -> bool:
        """May this due message start now? If not it waits in its key's waitlist."""
        control = message.flow_control
        if control is None:
            return True
        gate = self.gate(control.key)
        now = now_ms()
        reserved = message.message_id in gate.reserved
        gate.reserved.discard(message.message_id)
        if not reserved and (gate.waitlist or gate.room(now) <= 0):
            verdict: str | int | None = None  # queue behind the ones already waiting
        else:
            verdict = gate.try_start(now)
            if verdict == START:
                return True
        if reserved:
            gate.waitlist.appendleft(message.message_id)
        else:
            gate.waitlist.append(message.message_id)
        self._arm(gate, verdict if isinstance(verdict, int) else gate.next_window_ms())
        return False

    def _drain(self, gate: FlowGate) -> None:
        for _ in range(min(gate.room(now_ms()), len(gate.waitlist))):
            message_id = gate.waitlist.popleft()
            gate.reserved.add(message_id)
            self._push(self._messages[message_id], due_ms=now_ms())
        if gate.waitlist:
            self._arm(gate, gate.next_window_ms())

    def _arm(self, gate: FlowGate, at_ms: int | None) -> None:
        """Drain the gate again when its rate window ends."""
        if at_ms is None or self._stopping:
            return
        timer = self._timers.get(gate.key)
        loop = asyncio.get_running_loop()
        when = loop.time() + max(0.0, (at_ms - now_ms()) / 1000)
        if timer is not None and not timer.cancelled() and timer.when() <= when:
            return
        if timer is not None:
            timer.cancel()
        self._timers[gate.key] = loop.call_at(when, self._window_ended, gate)

    def _window_ended(self, gate: FlowGate) -> None:
        self._timers.pop(gate.key, None)
        self._drain(gate)

    # -- scheduling ----------------------------------------------------------------------------
    def _push(self, message: Message, due_ms: int | None = None) -> None:
        ticket = next(self._counter)
        self._tickets[message.message_id] = ticket
        due = message.not_before_ms if due_ms is None else due_ms
        heapq.heappush(self._heap, (due, ticket, message.message_id))
        self._wakeup.set()

    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            due = self._pop_due()
            if due is None:
                await self._sleep_until_next()
                continue
            await self._slots.acquire()
            if self._stopping or due.message_id not in self._messages or not self._admit(due):
                self._slots.release()
                continue
            task = asyncio.create_task(self._attempt(due))
            self._in_flight.add(task)
            task.add_done_callback(self._finished_task)

    def _finished_task(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slots.release()

    def _pop_due(self) -> Message | None:
        if self._hold:
            return None
        now = now_ms()
        while self._heap and self._heap[0][0] <= now:
            _, ticket, message_id = heapq.heappop(self._heap)
            if self._tickets.get(message_id) == ticket:
                del self._tickets[message_id]
                message = self._messages.get(message_id)
                if message is not None:
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
        started = now_ms()
        try:
            response = await self._call(message)
        finally:
            if message.flow_control is not None:
                gate = self.gate(message.flow_control.key)
                gate.finished()
                self._drain(gate)
        if message.message_id not in self._messages:
            return  # cancelled while in flight
        final = (
            response.delivered or response.non_retryable or message.retried >= message.max_retries
        )
        self._settle(message, response, started, final=final)

    async def _call(self, message: Message) -> Response:
        headers = {name: values[-1] for name, values in message.headers.items()}
        headers.update(
            {
                "Upstash-Signature": sign_delivery(
                    message.url,
                    message.body,
                    self._signing_key(),
                    now=int(time.time()) + self._clock_skew,
                ),
                "Upstash-Message-Id": message.message_id,
                "Upstash-Retried": str(message.retried),
            }
        )
        optional = {
            "Upstash-Topic-Name": message.topic_name,
            "Upstash-Schedule-Id": message.schedule_id,
            "Upstash-Caller-Ip": message.caller_ip,
        }
        headers.update({name: value for name, value in optional.items() if value})
        assert self._session is not None, "dispatcher not started"
        timeout = aiohttp.ClientTimeout(total=message.timeout_seconds or DEFAULT_TIMEOUT_SECONDS)
        try:
            async with self._session.request(
                message.method,
                self._route(message.url),
                data=message.body,
                headers=headers,
                timeout=timeout,
            ) as answer:
                content = bytearray()
                async for chunk in answer.content.iter_chunked(16384):
                    content += chunk
                    if len(content) >= RESPONSE_BODY_LIMIT:
                        break
                received = {k.lower(): v for k, v in answer.headers.items()}
                return Response(answer.status, received, bytes(content))
        except (aiohttp.ClientError, TimeoutError) as error:
            return Response(0, {}, b"", f"{type(error).__name__}: {error}"[:300])

    def _route(self, url: str) -> str:
        for prefix, target in self._routes:
            if url.startswith(prefix):
                return target + url[len(prefix) :]
        return url

    def _settle(self, message: Message, response: Response, started: int, *, final: bool) -> None:
        """Record one attempt's outcome (one transaction), then its callbacks."""
        error = None if response.delivered else (response.error or f"status {response.status}")
        headers = {name: [value] for name, value in response.headers.items()}
        letter = None
        if not response.delivered and final:
            letter = DeadLetter(
                dlq_id=f"{now_ms()}-{secrets.randbelow(10**6)}",
                message=message,
                response_status=response.status,
                response_headers=headers,
                response_body=response.body,
                failed_at_ms=now_ms(),
            )
        callbacks = []
        if message.callback:
            callbacks.append(
                callback_message(
                    message,
                    url=message.callback,
                    options=message.callback_options,
                    status=response.status,
                    response_headers=headers,
                    response_body=response.body,
                )
            )
        if letter is not None and message.failure_callback:
            callbacks.append(
                callback_message(
                    message,
                    url=message.failure_callback,
                    options=message.failure_callback_options,
                    status=response.status,
                    response_headers=headers,
                    response_body=response.body,
                    dlq_id=letter.dlq_id,
                )
            )
        if final and message.queue_name:
            for callback in callbacks:  # they keep the queue's slot until they finish
                callback.holds_queue = message.queue_name
        if not final:
            message.retried += 1
            message.not_before_ms = now_ms() + int(self._retry_wait(message, response) * 1000)
        with self._store.transaction() as db:
            self._store.log(db, message, "ACTIVE", at_ms=started)
            if response.delivered:
                self._store.log(db, message, "DELIVERED", response_status=response.status)
            else:
                self._store.log(db, message, "ERROR", error=error, response_status=response.status)
            if final:
                self._store.finish_message(db, message)
            else:
                self._store.save_messages(db, [message], state=None)
                self._store.log(db, message, "RETRY", next_delivery_ms=message.not_before_ms)
            if letter is not None:
                self._store.add_dead_letter(db, letter)
                self._store.log(db, message, "FAILED", error=error, response_status=response.status)
            self._store.save_messages(db, callbacks)
        if letter is not None:
            log.info("dead_lettered", message_id=message.message_id, status=response.status)
        if final:
            self._finish(message, delivered=response.delivered, successors=callbacks)
        else:
            self._push(message)
        self.submit(callbacks)

    @staticmethod
    def _retry_wait(message: Message, response: Response) -> float:
        wait = retry_after_seconds(response.headers)
        if wait is None and message.retry_delay:
            wait = compile_retry_delay(message.retry_delay)(message.retried - 1) / 1000
        return default_backoff(message.retried) if wait is None else wait

    def _finish(
        self, message: Message, *, delivered: bool, successors: list[Message] | None = None
    ) -> None:
        """The message is no longer pending: free its queue slot and flow-control config."""
        self._messages.pop(message.message_id, None)
        self._tickets.pop(message.message_id, None)
        if message.flow_control is not None:
            gate = self.gate(message.flow_control.key)
            gate.untrack(message.flow_control)
            gate.forget(message.message_id)
        lane_name = message.holds_queue or message.queue_name
        lane = self.lanes.get(lane_name) if lane_name else None
        if lane is not None:
            lane.forget(message.message_id)
            if successors and not message.holds_queue:
                lane.active.update(callback.message_id for callback in successors)
            self._activate(lane)
        if self.on_finished is not None:
            self.on_finished(message, delivered)
