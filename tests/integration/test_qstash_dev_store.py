"""The local QStash server's store: deduplication ids expire on their own and do not pile up,
and message ids stay unique and unguessable while sorting by time."""

from __future__ import annotations

import re
import time

from data_pipeline.devtools.qstash_server import store as store_module
from data_pipeline.devtools.qstash_server.model import new_message_id
from data_pipeline.devtools.qstash_server.store import QStashStore


def _dedup_rows(store: QStashStore) -> int:
    with store.transaction() as db:
        return db.execute("SELECT count(*) FROM dedup").fetchone()[0]


def test_expired_deduplication_ids_are_swept_and_live_ones_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "DEDUP_SWEEP_INTERVAL_MS", 50)
    store = QStashStore(tmp_path / "qstash.db")
    with store.transaction() as db:
        for index in range(100):
            store.dedup_remember(db, f"short-{index}", {"messageId": index}, window_ms=1)
        store.dedup_remember(db, "long", {"messageId": "kept"}, window_ms=60_000)
    time.sleep(0.1)  # past the short window and the sweep interval
    with store.transaction() as db:
        assert store.dedup_lookup(db, "short-0") is None  # expired: not a duplicate any more
        store.dedup_remember(db, "next", {"messageId": "next"}, window_ms=60_000)
        assert store.dedup_lookup(db, "long") == {"messageId": "kept"}
    assert _dedup_rows(store) == 2  # the expired ones are gone, not only ignored
    with store.transaction() as db:
        plan = " ".join(
            str(row)
            for row in db.execute("EXPLAIN QUERY PLAN DELETE FROM dedup WHERE expires_at_ms <= 0")
        )
    assert "dedup_by_expiry" in plan  # the sweep reads expired rows only, never the whole table
    store.close()


def test_message_ids_are_unique_unguessable_and_sort_by_time():
    ids = [new_message_id() for _ in range(2_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"msg_[0-9a-f]{13}[A-Za-z0-9_-]{16}", i) for i in ids)
    assert len({i[-16:] for i in ids}) == len(ids)  # 96 random bits after the time
    later = new_message_id()
    time.sleep(0.001)
    assert new_message_id()[:17] >= later[:17]
