"""Version numbers that order the states of one Salla object, independent of arrival order.

A version is the event's own time, never arrival time: the entity's update time when the payload
has one, else the envelope `created_at`. Salla times have one-second resolution, so ties are
broken deterministically, first by what kind of change it is (a deletion beats an update in the
same second, an update beats a creation, any webhook beats a backfilled snapshot of the same
instant), then by the body hash, so every replica and every replay picks the same winner.

Layout (62 bits): [milliseconds since epoch: 42][rank: 4][body-hash tiebreak: 16].

Salla's times are whole seconds, so the millisecond part of their versions is free; it orders
the states of one second by what the payloads say, most significant first: the kind of change
(rank), then how far along the object is (an order's status in Salla's default flow: a
shipment in the same second as its confirmation is the later state), then more body-hash
bits. Two distinct same-second bodies of the same rank and progress share a version with
probability 1 / (12 × 65,536) ≈ 1.3e-6 per pair; they never share a row key, because every
stored row carries the body's own 64-bit key beside its version (`body_key`), and the newest
state is the greatest (version, body_key). (Versions computed before this layout carry 0 in the
millisecond field and order below every new one of the same second; rows stored before the body
key carry key 0.)
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum

_RANK_BITS = 4
_TIEBREAK_BITS = 16


class Rank(IntEnum):
    BACKFILL = 0
    CREATED = 1
    UPDATED = 2
    CONCLUDED = 3  # a purchase that recovers a cart beats an update of it in the same second
    DELETED = 15


# Rank order inside one second (the millisecond field): 5 ranks × 200 values.
_RANK_SLOT = {0: 0, 1: 1, 2: 2, 3: 3, 15: 4}
_PROGRESS_STEPS = 16
_HASH_SLOTS = 12  # 16 progress × 12 = 192 ≤ 200 values per rank


def make_version(event_time: datetime, rank: Rank, body_sha256: str, progress: int = 0) -> int:
    """`progress` (0-15): how far along the object's life this state is (see order_progress)."""
    millis = int(event_time.timestamp() * 1000)
    if millis < 0:
        raise ValueError("event time before the epoch")
    if millis % 1000 == 0:  # a whole second, as Salla sends: order the second's states
        step = min(max(progress, 0), _PROGRESS_STEPS - 1)
        spread = int(body_sha256[4:8], 16) % _HASH_SLOTS
        millis += _RANK_SLOT[rank] * 200 + step * _HASH_SLOTS + spread
    tiebreak = int(body_sha256[:4], 16)
    return (millis << (_RANK_BITS + _TIEBREAK_BITS)) | (rank << _TIEBREAK_BITS) | tiebreak


# Salla's default order flow (merchant dashboard: awaiting payment → under review → in progress
# → completed → delivering → delivered/shipped; returns after that; cancelled ends it). Merchants
# can move an order between any statuses, so this only breaks ties inside one second, where a
# payload can say nothing else about which state came later. Custom statuses map by their slug.
_ORDER_FLOW = {
    "payment_pending": 1,
    "under_review": 2,
    "in_progress": 3,
    "completed": 4,
    "delivering": 5,
    "shipped": 6,
    "delivered": 7,
    "restoring": 8,
    "restored": 9,
    "canceled": 10,
    "cancelled": 10,
}


def order_progress(status_slug: str | None) -> int:
    return _ORDER_FLOW.get(status_slug or "", 0)


def body_key(body_sha256: str) -> int:
    """The first 64 bits of a body's SHA-256 (hex), stored beside the version: the version
    orders states and has room for only ~20 bits of the body's hash inside a second, so two
    distinct bodies of one object, second, kind and progress can share a version (about once
    in 800,000 such pairs); with this key as well they never share a row key, and the newest
    state is chosen by (version, body_key) everywhere: one deterministic winner, both kept."""
    return int(body_sha256[:16], 16)


def version_time_millis(version: int) -> int:
    return version >> (_RANK_BITS + _TIEBREAK_BITS)


def rank_for_event(event: str) -> Rank:
    if event.endswith(".backfilled"):
        return Rank.BACKFILL
    if event.endswith((".deleted", ".uninstalled")):
        return Rank.DELETED
    if event.endswith((".created", ".installed")):
        return Rank.CREATED
    if event.endswith(".purchased"):
        return Rank.CONCLUDED
    return Rank.UPDATED
