"""The local QStash server's store: deduplication ids expire on their own and do not pile up,
and message ids stay unique and unguessable while sorting by time."""

from __future__ import annotations

import re
import time

from data_pipeline.devtools.qstash_server import store as store_module
from data_pipeline.devtools.qstash_server.model import Message, new_message_id
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


def test_finished_messages_past_retention_are_swept_through_an_index(tmp_path):
    store = QStashStore(tmp_path / "qstash.db", retention_ms=0)
    pending = [_message(f"pending-{index}") for index in range(5)]
    finished = [_message(f"done-{index}") for index in range(1_000)]
    with store.transaction() as db:
        store.save_messages(db, pending + finished)
    time.sleep(0.01)
    with store.transaction() as db:
        for message in finished:  # the 1,000th finish runs the sweep
            store.finish_message(db, message)
    with store.transaction() as db:
        left = db.execute("SELECT count(*) FROM messages WHERE finished_at_ms IS NOT NULL")
        assert left.fetchone()[0] < 1_000  # swept, not only hidden
        sweep = "EXPLAIN QUERY PLAN DELETE FROM messages WHERE finished_at_ms < 0"
        plan = " ".join(str(row) for row in db.execute(sweep))
    assert "messages_by_finish" in plan  # never a scan of every stored body
    assert sorted(m.message_id for m in store.load_messages()) == sorted(
        m.message_id for m in pending
    )
    store.close()


def _message(message_id: str) -> Message:
    now = int(time.time() * 1000)
    return Message(
        message_id=message_id,
        url="http://127.0.0.1:9/x",
        method="POST",
        body=b"{}",
        headers={},
        max_retries=3,
        created_at_ms=now,
        not_before_ms=now,
    )
