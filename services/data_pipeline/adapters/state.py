"""The low-latency state store port: settlements, merchants, sync jobs, locks and rate limits.

Two implementations behind one contract test suite: Redis (production, shared by every function
instance) and SQLite (embedded local default when REDIS_URL is unset).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from enum import StrEnum

from data_pipeline.domain.sync import SyncJob

# How long an event's settlement is remembered: longer than Salla's retry window (~15 min) and
# QStash's DLQ retention (7 days on pay-as-you-go), so late copies are recognised.
SETTLEMENT_TTL_SECONDS = 35 * 24 * 3600


class Verdict(StrEnum):
    FIRST = "first"  # this event's first settlement: count it
    REDELIVERY = "redelivery"  # the same queue message again: already counted
    DUPLICATE = "duplicate"  # another copy of an event already settled
    RECOVERED = "recovered"  # a dead-lettered event loaded by a DLQ replay


@dataclass(frozen=True, slots=True)
class MerchantRecord:
    merchant_id: int
    installed: bool
    install_version: int
    access_token: bytes | None = None  # encrypted
    refresh_token: bytes | None = None  # encrypted
    expires_at: float | None = None  # Unix seconds
    scope: str = ""
    token_version: int = 0

    @property
    def active(self) -> bool:
        return self.installed and self.access_token is not None


@dataclass(frozen=True, slots=True)
class EncryptedTokens:
    access_token: bytes
    refresh_token: bytes
    expires_at: float | None
    scope: str


class StateStore(abc.ABC):
    @abc.abstractmethod
    async def settle(self, event_key: str, message_id: str, outcome: str) -> Verdict:
        """Record that `event_key` reached `outcome` through queue message `message_id`."""

    async def settle_many(self, settlements: list[tuple[str, str, str]]) -> list[Verdict]:
        """`settle` for many (event_key, message_id, outcome) at once, verdicts in order: a bulk
        import settles thousands per batch, where one round trip each dominates."""
        return [await self.settle(*settlement) for settlement in settlements]

    @abc.abstractmethod
    async def get_merchant(self, merchant_id: int) -> MerchantRecord | None: ...

    @abc.abstractmethod
    async def set_installed(self, merchant_id: int, installed: bool, version: int) -> bool:
        """Apply if `version` is newer than the stored installation state; True if applied."""

    @abc.abstractmethod
    async def set_tokens(self, merchant_id: int, tokens: EncryptedTokens, version: int) -> bool:
        """Apply if `version` is newer than the stored tokens; True if applied."""

    # -- historical sync jobs -------------------------------------------------------------------
    @abc.abstractmethod
    async def create_job_unless_active(self, job: SyncJob) -> tuple[SyncJob, bool]:
        """Store `job` as the merchant's latest, unless one is QUEUED or RUNNING: then return
        that one instead. Atomic. Returns (the merchant's job, whether `job` was created)."""

    @abc.abstractmethod
    async def get_job(self, job_id: str) -> SyncJob | None: ...

    @abc.abstractmethod
    async def latest_job(self, merchant_id: int) -> SyncJob | None: ...

    @abc.abstractmethod
    async def save_job(self, job: SyncJob, *, expected_seq: int) -> bool:
        """Replace the job only if its stored `seq` is still `expected_seq` (compare-and-set)."""

    # -- leases ---------------------------------------------------------------------------------
    @abc.abstractmethod
    async def acquire_lock(self, name: str, owner: str, ttl_seconds: float) -> bool: ...

    @abc.abstractmethod
    async def release_lock(self, name: str, owner: str) -> None:
        """Release only if `owner` still holds it."""

    # -- write-ahead records --------------------------------------------------------------------
    @abc.abstractmethod
    async def put_record(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Keep `value` under `key` until it is dropped or expires (written before anything
        that could lose it can fail: Salla's single-use token answers)."""

    @abc.abstractmethod
    async def get_record(self, key: str) -> bytes | None: ...

    async def replace_record(
        self, key: str, expected: bytes | None, value: bytes, ttl_seconds: float
    ) -> bool:
        """Store `value` only if the record is still `expected` (None: absent); atomic. True if
        stored. Lets concurrent deliveries advance one record without a lock round trip."""
        [stored] = await self.replace_records([(key, expected, value)], ttl_seconds)
        return stored

    @abc.abstractmethod
    async def get_records(self, keys: list[str]) -> dict[str, bytes]:
        """`get_record` for many keys in one round trip (absent keys are left out)."""

    @abc.abstractmethod
    async def replace_records(
        self, changes: list[tuple[str, bytes | None, bytes]], ttl_seconds: float
    ) -> list[bool]:
        """`replace_record` for many (key, expected, value) in one round trip, each atomic on its
        own; results in order."""

    @abc.abstractmethod
    async def drop_record(self, key: str) -> None: ...

    # -- what the vector index holds (RAG) ------------------------------------------------------
    @abc.abstractmethod
    async def embedded_digests(self, scope: str, doc_ids: list[str]) -> dict[str, str]:
        """The content digest last embedded for each of `doc_ids` in `scope` (ids never embedded
        are absent). Kept here, not read back from the vector index: Pinecone serverless reads
        are eventually consistent, so a fetch right after an upsert can answer an older state."""

    @abc.abstractmethod
    async def record_embedded(self, scope: str, digests: dict[str, str | None]) -> None:
        """Record what the index now holds; None forgets a document (its vector was deleted)."""

    # -- shared rate limits (GCRA) --------------------------------------------------------------
    @abc.abstractmethod
    async def reserve_slot(
        self, key: str, interval_seconds: float, burst: int, max_wait_seconds: float
    ) -> float:
        """Reserve the next request slot of `key`, shared by every worker: returns how long to
        wait before sending (0 = now). A slot further away than `max_wait_seconds` is not
        reserved: the caller reschedules instead, and gets the wait to reschedule by."""

    @abc.abstractmethod
    async def hold_slots(self, key: str, seconds: float) -> None:
        """Nobody gets a slot of `key` for `seconds` from now (after a 429), by the store's
        clock (the one reserve_slot uses), not the caller's."""

    @abc.abstractmethod
    async def ping(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


def decide(existing: tuple[str, str] | None, message_id: str, outcome: str) -> Verdict:
    """The settlement rule both implementations apply atomically."""
    if existing is None:
        return Verdict.FIRST
    previous_message, previous_outcome = existing
    if previous_message == message_id:
        return Verdict.REDELIVERY
    if previous_outcome == "dead_lettered" and outcome in ("loaded", "ignored"):
        return Verdict.RECOVERED
    return Verdict.DUPLICATE
