"""The raw archive outside the warehouse: every accepted event, batched, compressed, immutable.

The loader hands each group commit's raw events here, written at the same time as the warehouse
insert: one object per merchant and event date (the event's `created_at`, else the day it was
received), gzip'd JSON Lines sorted by body hash, named by the SHA-256 of its content, so the
same batch written again is the same object (a no-op). Events whose warehouse load fails are
archived all the same (the write does not wait for the warehouse), so an event that ends in the
DLQ is still in the archive.

An archive write that fails does not lose the event: its warehouse load still completes, the
delivery is answered with a retry (the queue delivers it again, the load is idempotent) and
`pipeline_archive_pending_events` counts it until a later write archives it.

Key layout: `merchant=<id>/date=<YYYY-MM-DD>/<sha256>.jsonl.gz` (a prefix per merchant, then
per day: a rebuild lists only what it needs). Line format `ARCHIVE_FORMAT` below.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import re
import zlib
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson

from data_pipeline.adapters.archive import ArchiveStore
from data_pipeline.adapters.warehouse import RawEvent
from data_pipeline.domain.app_events import redact_secrets
from data_pipeline.domain.envelope import Envelope
from data_pipeline.errors import InvalidPayload, TransientError
from data_pipeline.observability.metrics import PipelineMetrics

ARCHIVE_FORMAT = 1  # each line: {"v", "sha256", "event", "merchant", "created_at",
#                                  "received_at", "source", "body"} (body: the envelope's JSON)
_KEY = re.compile(r"^merchant=(\d+)/date=(\d{4}-\d{2}-\d{2})/([0-9a-f]{64})\.jsonl\.gz$")


@dataclass(frozen=True)
class ArchiveObject:
    key: str
    data: bytes
    hashes: tuple[str, ...]  # the body hashes it holds


def archive_objects(events: Sequence[RawEvent]) -> list[ArchiveObject]:
    """The objects holding `events`: one per merchant and event date, each event once."""
    groups: dict[tuple[int, date], dict[str, RawEvent]] = defaultdict(dict)
    for event in events:
        day = (event.event_created_at or event.received_at).date()
        groups[(event.merchant_id, day)].setdefault(event.body_sha256, event)
    objects = []
    for (merchant, day), by_hash in sorted(groups.items()):
        content = b"".join(_line(by_hash[digest]) for digest in sorted(by_hash))
        name = hashlib.sha256(content).hexdigest()
        objects.append(
            ArchiveObject(
                key=f"merchant={merchant}/date={day.isoformat()}/{name}.jsonl.gz",
                data=gzip.compress(content, compresslevel=6, mtime=0),
                hashes=tuple(sorted(by_hash)),
            )
        )
    return objects


def _line(event: RawEvent) -> bytes:
    record = {
        "v": ARCHIVE_FORMAT,
        "sha256": event.body_sha256,
        "event": event.event,
        "merchant": event.merchant_id,
        "created_at": event.event_created_at.isoformat() if event.event_created_at else None,
        "received_at": event.received_at.isoformat(),
        "source": event.source,
        "body": event.body.decode("utf-8"),  # an envelope's body: valid UTF-8, parsed
    }
    return orjson.dumps(record) + b"\n"


@dataclass(frozen=True)
class ArchivedEvent:
    sha256: str
    body: bytes
    received_at: datetime
    source: str


def object_lines(data: bytes) -> list[bytes]:
    """The lines (archive records) of one object; InvalidPayload when it is not gzip."""
    try:
        return gzip.decompress(data).splitlines()
    except (OSError, EOFError, zlib.error) as error:
        raise InvalidPayload(f"object is not gzip: {error}") from None


def archived_event(line: bytes) -> ArchivedEvent:
    """One archive line; InvalidPayload naming what is wrong with it."""
    try:
        return _archived(orjson.loads(line))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise InvalidPayload(f"not an archive record ({error})") from None


def _archived(record: Any) -> ArchivedEvent:
    if record["v"] != ARCHIVE_FORMAT:
        raise ValueError(f"unknown archive format {record['v']!r}")
    sha256 = record["sha256"]
    if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError("sha256 is not a SHA-256 hex digest")
    return ArchivedEvent(
        sha256=sha256,
        body=str(record["body"]).encode(),
        received_at=datetime.fromisoformat(record["received_at"]),
        source=str(record["source"])[:32],
    )


def key_parts(key: str) -> tuple[int, date] | None:
    """(merchant, event date) of an archive object's key; None for anything else."""
    match = _KEY.match(key)
    if match is None:
        return None
    try:
        return int(match.group(1)), date.fromisoformat(match.group(2))
    except ValueError:  # a day that does not exist
        return None


class RawArchive:
    """Writes raw events to the archive store; see the module docstring for the guarantees."""

    def __init__(
        self, store: ArchiveStore, metrics: PipelineMetrics, *, remembered: int = 100_000
    ) -> None:
        self.store = store
        self._metrics = metrics
        self._pending: set[str] = set()  # loaded, not archived yet (this instance)
        # Hashes this instance archived lately: a redelivery (Salla's retries, QStash's) is not
        # written a second time. Across instances a copy racing the first can be; a rebuild
        # counts it as a duplicate.
        self._archived: OrderedDict[str, None] = OrderedDict()
        self._remembered = remembered

    async def write(self, events: Sequence[RawEvent]) -> None:
        """Archive `events`. Raises TransientError (after counting) when the store failed."""
        objects = archive_objects([e for e in events if e.body_sha256 not in self._archived])
        results = await asyncio.gather(
            *(asyncio.to_thread(self.store.put, o.key, o.data) for o in objects),
            return_exceptions=True,
        )
        failed: list[BaseException] = []
        for archived, result in zip(objects, results, strict=True):
            if isinstance(result, BaseException):
                failed.append(result)
                self._pending.update(archived.hashes)
                continue
            self._metrics.archive_objects.labels("written" if result else "already").inc()
            self._pending.difference_update(archived.hashes)
            self._remember(archived.hashes)
        self._metrics.archive_pending.set(len(self._pending))
        if failed:
            self._metrics.archive_failures.inc(len(failed))
            first = failed[0]
            if isinstance(first, TransientError):
                raise first
            raise TransientError(f"raw archive write failed: {first}") from first

    def _remember(self, hashes: Sequence[str]) -> None:
        for digest in hashes:
            self._archived[digest] = None
            self._archived.move_to_end(digest)
        while len(self._archived) > self._remembered:
            self._archived.popitem(last=False)


def archive_record(envelope: Envelope, raw: bytes, received: datetime, source: str) -> RawEvent:
    """The raw event as archived: byte-exact, except that credentials are redacted."""
    if envelope.event.startswith("app."):
        document = json.loads(raw)
        redacted = json.dumps(redact_secrets(document), ensure_ascii=False, separators=(",", ":"))
        body = redacted.encode("utf-8")
    else:
        body = raw
    return RawEvent(
        merchant_id=envelope.merchant_id,
        body_sha256=envelope.body_sha256,
        event=envelope.event,
        event_created_at=envelope.created_at,
        received_at=received,
        source=source,
        body=body,
    )
