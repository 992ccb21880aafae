"""Version numbers that order the states of one Salla object, independent of arrival order.

A version is the event's own time, never arrival time: the entity's update time when the payload
has one, else the envelope `created_at`. Salla times have one-second resolution, so ties are
broken deterministically, first by what kind of change it is (a deletion beats an update in the
same second, an update beats a creation, any webhook beats a backfilled snapshot of the same
instant), then by the body hash, so every replica and every replay picks the same winner.

Layout (62 bits): [milliseconds since epoch: 42][rank: 4][body-hash tiebreak: 16].
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


def make_version(event_time: datetime, rank: Rank, body_sha256: str) -> int:
    millis = int(event_time.timestamp() * 1000)
    if millis < 0:
        raise ValueError("event time before the epoch")
    tiebreak = int(body_sha256[:4], 16)
    return (millis << (_RANK_BITS + _TIEBREAK_BITS)) | (rank << _TIEBREAK_BITS) | tiebreak


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
