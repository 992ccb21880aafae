"""Rebuild the entity tables from the raw event archive.

Every archived event is transformed again and its rows written with the *same* versions as the
first time (versions come from the event's own time and its original body hash, which is the
archive's key; app events are archived with their credentials redacted, so the stored hash is
passed explicitly). Replaying is therefore idempotent: into intact tables it changes nothing,
into emptied ones it restores them. Merchant state (tokens) is not replayed: it lives in the
state store and its credentials were never archived.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from data_pipeline.adapters.warehouse import LoadBatch, Warehouse
from data_pipeline.domain.envelope import parse_envelope
from data_pipeline.domain.events import transform
from data_pipeline.errors import InvalidPayload


@dataclass
class ReplayReport:
    events: int = 0
    rows: int = 0
    unmodeled: int = 0
    invalid: list[str] = field(default_factory=list)  # body hashes that still cannot load


def replay_archive(
    warehouse: Warehouse,
    database: str,
    *,
    merchant_id: int | None = None,
    page_size: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    report = ReplayReport()
    after = (0, "")
    where = "" if merchant_id is None else " AND merchant_id = {merchant:UInt64}"
    while True:
        page = warehouse.query(
            f"SELECT merchant_id, body_sha256, body FROM {database}.raw_events FINAL"  # noqa: S608
            " WHERE (merchant_id, body_sha256) > ({after_merchant:UInt64}, {after_hash:String})"
            f"{where} ORDER BY merchant_id, body_sha256 LIMIT {{limit:UInt32}}",
            {
                "after_merchant": after[0],
                "after_hash": after[1],
                "merchant": merchant_id or 0,
                "limit": page_size,
            },
        ).rows
        if not page:
            return report
        batch = LoadBatch()
        for _merchant, digest, body in page:
            report.events += 1
            try:
                result = transform(parse_envelope(body.encode(), digest=digest))
            except InvalidPayload:
                report.invalid.append(digest)
                continue
            report.unmodeled += not result.modeled
            batch.entities.extend(result.entities)
        warehouse.write(batch)
        report.rows += len(batch.entities)
        after = (page[-1][0], page[-1][1])
        if progress is not None:
            progress(len(page))
