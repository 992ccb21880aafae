"""The queue port: hand events to the durable queue (QStash) and get deliveries back."""

from __future__ import annotations

import abc
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Published:
    message_ids: tuple[str, ...]
    deduplicated: bool


class EventQueue(abc.ABC):
    @abc.abstractmethod
    async def publish_raw_event(
        self, body: bytes, *, dedup_id: str, accepted_at_ms: int, sensitive: bool
    ) -> Published:
        """Durably enqueue a raw Salla event for the ETL worker. Raises TransientError."""

    @abc.abstractmethod
    async def publish_step(
        self, url: str, body: bytes, *, dedup_id: str, flow: str, delay_seconds: int = 0
    ) -> Published:
        """Enqueue one step of a chain (historical sync) for `url`, at most once per
        `dedup_id`, delivered no sooner than `delay_seconds` from now, within the parallelism
        of worker flow `flow` (shared.topics). Raises TransientError."""

    @abc.abstractmethod
    async def publish_message(
        self, url: str, body: bytes, *, dedup_id: str, flow: str
    ) -> Published:
        """Enqueue one JSON message for `url` (batched with concurrent publishes), at most once
        per `dedup_id`, within the parallelism of worker flow `flow`. Raises TransientError."""

    @abc.abstractmethod
    async def publish_cdc_batch(self, body: bytes, *, dedup_id: str) -> Published:
        """Enqueue a batch of captured PostgreSQL changes (the cdc-events topic), at most once
        per `dedup_id`. Raises TransientError."""

    @abc.abstractmethod
    async def publish_to_topic(self, topic: str, body: bytes, *, dedup_id: str) -> Published:
        """Enqueue one JSON document for every subscriber of our URL group `topic` (unprefixed:
        domain events), at most once per `dedup_id`. Raises TransientError."""

    @abc.abstractmethod
    async def close(self) -> None: ...
