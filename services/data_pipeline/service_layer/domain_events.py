"""Publishing domain events after the warehouse confirmed a load.

Per entity key: read the state its last events came from, derive the new version's events
(domain/domain_events.py), publish them as CloudEvents to their QStash topics, then store the
new state with a compare-and-set (a concurrent delivery that stored first makes this one derive
again from its state). Concurrent deliveries share one read and one compare-and-set round trip
(group commit, as the warehouse loader does).

A crash after publishing and before storing re-derives the same events with the same ids,
which QStash drops as duplicates within its 10-minute window (a consumer also drops a version
it has seen: at-least-once at that one boundary); a version that is not newer than the stored
state publishes nothing, so redeliveries, duplicates, replays and late older versions add no
event. Only events with subscribers are published (a QStash URL group exists only with
endpoints); the others are still derived, so state stays current for when a subscriber
arrives.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from data_pipeline.adapters.queue import EventQueue
from data_pipeline.adapters.state import StateStore
from data_pipeline.domain.domain_events import DomainEvent, Tracked, derive, entity_key
from data_pipeline.errors import TransientError
from shared.domain_events import (
    NOTIFICATION_EVENTS,
    NOTIFICATIONS,
    event_topic,
    event_type,
    has_text_id,
    id_field,
)
from shared.topics import NOTIFICATIONS_TOPIC

STATE_TTL = 5 * 365 * 24 * 3600  # an order updated years later is not "created" again
CAS_ATTEMPTS = 5  # concurrent deliveries of one entity: each retry re-reads what won


class EventsBusy(TransientError):
    """Concurrent deliveries of one entity kept advancing its state; retry shortly."""


def cloud_event(event: DomainEvent, environment: str) -> bytes:
    """CloudEvents 1.0, structured JSON."""
    entity_id: Any = event.entity_id if has_text_id(event.name) else int(event.entity_id)
    document = {
        "specversion": "1.0",
        "id": event_id(event),
        "source": f"salla-pipeline/{environment}",
        "type": event_type(event.name),
        "time": event.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "subject": f"merchant/{event.merchant_id}/{event.entity}/{event.entity_id}",
        "datacontenttype": "application/json",
        "data": {
            "merchantId": event.merchant_id,
            id_field(event.name): entity_id,
            "version": event.version,
            **event.data,
        },
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def event_id(event: DomainEvent) -> str:
    return "evt-" + hashlib.sha256(event.key.encode()).hexdigest()[:40]


class DomainEventPublisher:
    def __init__(
        self,
        state: StateStore,
        queue: EventQueue,
        *,
        environment: str,
        subscribed: Iterable[str],
        dlq_alert_threshold: int = 10,
    ) -> None:
        self._state = state
        self._queue = queue
        self._environment = environment
        self.subscribed = frozenset(subscribed)
        self.notifications = NOTIFICATIONS in self.subscribed
        self._dlq_threshold = dlq_alert_threshold
        self._pending: list[tuple[list[Any], asyncio.Future[int]]] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.subscribed)

    async def after_load(self, entities: Iterable[Any]) -> int:
        """Derive and publish the events of entities whose load was just confirmed; returns once
        they are published and the state advanced. Concurrent deliveries are handled together
        (group commit: one read and one compare-and-set round trip to the state store for all
        of them). Returns how many were published. Raises TransientError (the delivery is
        retried: loads and events are idempotent)."""
        if not self.enabled:
            return 0
        mine = [e for e in entities if entity_key(e) is not None]
        if not mine:
            return 0
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((mine, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def publish(self, events: Iterable[DomainEvent]) -> int:
        """Events that need no state (a sync's end): published as they are."""
        published = 0
        for event in events:
            published += await self._publish(event)
        return published

    async def _flush(self) -> None:
        while self._pending:
            taken, self._pending = self._pending, []
            try:
                counts = await self._advance([entities for entities, _ in taken])
            except Exception as error:  # every waiter fails; QStash retries each delivery
                for _, future in taken:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), count in zip(taken, counts, strict=True):
                if not future.done():
                    future.set_result(count)

    async def _advance(self, batches: list[list[Any]]) -> list[int]:
        """Per entity key, versions in order: read the stored states, derive, publish, then
        advance every state with a compare-and-set; keys another instance advanced meanwhile
        are derived again from what it stored."""
        versions: dict[str, list[tuple[int, Any]]] = {}
        for index, entities in enumerate(batches):
            for entity in entities:
                versions.setdefault(f"events:{entity_key(entity)}", []).append((index, entity))
        counts = [0] * len(batches)
        keys = list(versions)
        for _ in range(CAS_ATTEMPTS):
            stored = await self._state.get_records(keys)
            changes, events = [], []
            for key in keys:
                state = Tracked.from_json(stored[key]) if key in stored else None
                advanced = False
                for index, entity in sorted(versions[key], key=lambda pair: pair[1].version):
                    new, derived = derive(state, entity)
                    if new is not None:
                        state, advanced = new, True
                        events += [(index, event) for event in derived]
                if advanced and state is not None:
                    changes.append((key, stored.get(key), state.to_json()))
            published = await asyncio.gather(*(self._publish(event) for _, event in events))
            for (index, _), count in zip(events, published, strict=True):
                counts[index] += count
            done = await self._state.replace_records(changes, STATE_TTL) if changes else []
            keys = [key for (key, _, _), ok in zip(changes, done, strict=True) if not ok]
            if not keys:
                return counts
        raise EventsBusy(f"events of {len(keys)} entities keep changing under concurrent loads")

    async def dead_lettered(self, merchant_id: int, at: datetime) -> bool:
        """Count a merchant's dead-lettered event in its hour; the one that reaches the
        threshold raises `dlq.growing` (once per merchant and hour). Best effort: an alert,
        never a reason to fail the delivery. Returns whether the alert was raised."""
        if "dlq.growing" not in self.subscribed and not self.notifications:
            return False
        window = at.astimezone(UTC).strftime("%Y-%m-%dT%H")
        key = f"dlq-count:{merchant_id}:{window}"
        for _ in range(CAS_ATTEMPTS):
            stored = await self._state.get_record(key)
            count = int(stored or b"0") + 1
            if await self._state.replace_record(key, stored, str(count).encode(), 2 * 3600):
                break
        else:
            return False
        if count != self._dlq_threshold:
            return False
        data = {"deadLettered": count, "threshold": self._dlq_threshold}
        await self.publish(
            [DomainEvent("dlq.growing", "dlq", merchant_id, window, count, at, data)]
        )
        return True

    async def _publish(self, event: DomainEvent) -> int:
        published = 0
        body = cloud_event(event, self._environment)
        if event.name in self.subscribed:
            topic = event_topic(event.name)
            await self._queue.publish_to_topic(topic, body, dedup_id=event_id(event))
            published += 1
        if self.notifications and event.name in NOTIFICATION_EVENTS:
            dedup = event_id(event) + "-n"
            await self._queue.publish_to_topic(NOTIFICATIONS_TOPIC, body, dedup_id=dedup)
            published += 1
        return published


def sync_event(name: str, merchant_id: int, job_id: str, seq: int, **data: Any) -> DomainEvent:
    """`sync.completed` / `sync.failed`, versioned by the job's sequence number (one event per
    job state, whoever announces it)."""
    return DomainEvent(name, "sync", merchant_id, job_id, seq, datetime.now(UTC), dict(data))
