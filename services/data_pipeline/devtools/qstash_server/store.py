"""Durable state of the local QStash server: one SQLite file in the data dir.

A publish is answered only after its messages are committed, so a restart loses nothing that
was accepted; messages still in the table at start-up are delivered again (at-least-once).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from data_pipeline.devtools.qstash_server.model import DeadLetter, Message, now_ms

EVENT_LOG_LIMIT = 200_000
_EVENT_COLUMNS = (
    "id, time_ms, message_id, state, url, topic_name, error, response_status, next_delivery_ms"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    message_id TEXT PRIMARY KEY, metadata TEXT NOT NULL, body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS dlq (
    dlq_id TEXT PRIMARY KEY, metadata TEXT NOT NULL, body BLOB NOT NULL,
    response_status INTEGER NOT NULL, response_headers TEXT NOT NULL, response_body BLOB NOT NULL,
    failed_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY, endpoints TEXT NOT NULL, created_at INTEGER, updated_at INTEGER
);
CREATE TABLE IF NOT EXISTS dedup (
    scope_key TEXT PRIMARY KEY, response TEXT NOT NULL, expires_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, message_id TEXT NOT NULL,
    state TEXT NOT NULL, url TEXT NOT NULL, topic_name TEXT, error TEXT,
    response_status INTEGER, next_delivery_ms INTEGER
);
CREATE INDEX IF NOT EXISTS events_by_message ON events (message_id);
"""


class QStashStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process restarts
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._event_writes = 0

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- messages ------------------------------------------------------------------------------
    def save_messages(
        self, db: sqlite3.Connection, messages: list[Message], state: str | None = "CREATED"
    ) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO messages VALUES (?, ?, ?)",
            [(m.message_id, m.metadata_json(), m.body) for m in messages],
        )
        if state is not None:
            for message in messages:
                self.log(db, message, state)

    def delete_message(self, db: sqlite3.Connection, message_id: str) -> bool:
        return db.execute("DELETE FROM messages WHERE message_id = ?", (message_id,)).rowcount > 0

    def load_messages(self) -> list[Message]:
        with self._lock:
            rows = self._db.execute("SELECT metadata, body FROM messages").fetchall()
        return [Message.from_row(metadata, body) for metadata, body in rows]

    # -- dead letters --------------------------------------------------------------------------
    def add_dead_letter(self, db: sqlite3.Connection, letter: DeadLetter) -> None:
        db.execute(
            "INSERT INTO dlq VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                letter.dlq_id,
                letter.message.metadata_json(),
                letter.message.body,
                letter.response_status,
                json.dumps(letter.response_headers),
                letter.response_body,
                letter.failed_at_ms,
            ),
        )

    def dead_letters(self, *, after: str | None, limit: int) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute(
                "SELECT dlq_id, metadata, body, response_status, response_headers, response_body,"
                " failed_at_ms FROM dlq WHERE dlq_id > ? ORDER BY dlq_id LIMIT ?",
                (after or "", limit),
            ).fetchall()
        return [_letter(row) for row in rows]

    def dead_letter(self, dlq_id: str) -> DeadLetter | None:
        with self._lock:
            row = self._db.execute(
                "SELECT dlq_id, metadata, body, response_status, response_headers, response_body,"
                " failed_at_ms FROM dlq WHERE dlq_id = ?",
                (dlq_id,),
            ).fetchone()
        return _letter(row) if row else None

    def delete_dead_letter(self, db: sqlite3.Connection, dlq_id: str) -> bool:
        return db.execute("DELETE FROM dlq WHERE dlq_id = ?", (dlq_id,)).rowcount > 0

    # -- topics --------------------------------------------------------------------------------
    def topics(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT name, endpoints, created_at, updated_at FROM topics")
            return {
                name: {
                    "name": name,
                    "endpoints": json.loads(endpoints),
                    "createdAt": created,
                    "updatedAt": updated,
                }
                for name, endpoints, created, updated in rows.fetchall()
            }

    def save_topic(self, db: sqlite3.Connection, topic: dict[str, Any]) -> None:
        db.execute(
            "INSERT OR REPLACE INTO topics VALUES (?, ?, ?, ?)",
            (topic["name"], json.dumps(topic["endpoints"]), topic["createdAt"], topic["updatedAt"]),
        )

    def delete_topic(self, db: sqlite3.Connection, name: str) -> None:
        db.execute("DELETE FROM topics WHERE name = ?", (name,))

    # -- deduplication -------------------------------------------------------------------------
    def dedup_lookup(self, db: sqlite3.Connection, scope_key: str) -> Any | None:
        row = db.execute(
            "SELECT response FROM dedup WHERE scope_key = ? AND expires_at_ms > ?",
            (scope_key, now_ms()),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def dedup_remember(
        self, db: sqlite3.Connection, scope_key: str, response: Any, window_ms: int
    ) -> None:
        now = now_ms()
        db.execute(
            "INSERT OR REPLACE INTO dedup VALUES (?, ?, ?)",
            (scope_key, json.dumps(response), now + window_ms),
        )
        if now % 97 == 0:  # cheap occasional sweep
            db.execute("DELETE FROM dedup WHERE expires_at_ms <= ?", (now,))

    # -- event log -----------------------------------------------------------------------------
    def log(
        self,
        db: sqlite3.Connection,
        message: Message,
        state: str,
        *,
        error: str | None = None,
        response_status: int | None = None,
        next_delivery_ms: int | None = None,
    ) -> None:
        db.execute(
            "INSERT INTO events (time_ms, message_id, state, url, topic_name, error,"
            " response_status, next_delivery_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                now_ms(),
                message.message_id,
                state,
                message.url,
                message.topic_name,
                error,
                response_status,
                next_delivery_ms,
            ),
        )
        self._event_writes += 1
        if self._event_writes % 10_000 == 0:
            db.execute(
                "DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?",
                (EVENT_LOG_LIMIT,),
            )

    def events(self, filters: dict[str, str], *, before: int | None, limit: int) -> list[Any]:
        clauses, values = ["id < ?"], [before or 2**62]
        for column, value in filters.items():
            clauses.append(f"{column} = ?")
            values.append(value)
        # Filter column names come from a fixed map in the app; values are bound parameters.
        where = " AND ".join(clauses)
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE {where} ORDER BY id DESC LIMIT ?"  # noqa: S608
        with self._lock:
            return self._db.execute(sql, (*values, limit)).fetchall()


def _letter(row: tuple[Any, ...]) -> DeadLetter:
    dlq_id, metadata, body, status, headers, response_body, failed_at = row
    return DeadLetter(
        dlq_id=dlq_id,
        message=Message.from_row(metadata, body),
        response_status=status,
        response_headers=json.loads(headers),
        response_body=bytes(response_body),
        failed_at_ms=failed_at,
    )
