"""Durable state of the local QStash server: one SQLite file in the data dir.

A publish is answered only after its messages are committed, so a restart loses nothing that
was accepted; messages still pending at start-up are delivered again (at-least-once). Queues,
schedules and flow-control settings (pause, pins) are kept the same way. A finished message
stays readable through `GET /v2/messages/{id}` for a minute, as on QStash, then is swept; a
cancelled one is gone at once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from data_pipeline.devtools.qstash_server.model import DeadLetter, Message, Queue, now_ms

EVENT_LOG_LIMIT = 200_000
# "Messages are removed from the database shortly after they're delivered" (OpenAPI, GET
# /v2/messages/{id}); a minute lets a caller read a message that was delivered at once.
FINISHED_RETENTION_MS = 60 * 1000
SCHEMA_VERSION = 2
EVENT_COLUMNS = (
    "id",
    "time_ms",
    "message_id",
    "state",
    "url",
    "topic_name",
    "error",
    "response_status",
    "next_delivery_ms",
    "label",
    "queue_name",
    "schedule_id",
)

DEDUP_SWEEP_INTERVAL_MS = 1_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    message_id TEXT PRIMARY KEY, metadata TEXT NOT NULL, body BLOB NOT NULL,
    finished_at_ms INTEGER
);
-- The retention sweep finds finished messages here: scanning the table (bodies and all) was a
-- stall of ~0.1 s per 100k messages kept, every 1,000 deliveries.
CREATE INDEX IF NOT EXISTS messages_by_finish ON messages (finished_at_ms)
    WHERE finished_at_ms IS NOT NULL;
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
CREATE INDEX IF NOT EXISTS dedup_by_expiry ON dedup (expires_at_ms);
-- No AUTOINCREMENT: the trim keeps the newest ids, so a plain rowid never reuses one, and
-- AUTOINCREMENT's counter row was a write per logged event.
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, message_id TEXT NOT NULL,
    state TEXT NOT NULL, url TEXT NOT NULL, topic_name TEXT, error TEXT,
    response_status INTEGER, next_delivery_ms INTEGER,
    label TEXT, queue_name TEXT, schedule_id TEXT
);
CREATE INDEX IF NOT EXISTS events_by_message ON events (message_id);
CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS schedules (
    schedule_id TEXT PRIMARY KEY, document TEXT NOT NULL, body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS flow_keys (key TEXT PRIMARY KEY, document TEXT NOT NULL);
"""

# Data dirs written by version 1 of this server (no queues, schedules or retention).
_UPGRADE_FROM_1 = (
    "ALTER TABLE messages ADD COLUMN finished_at_ms INTEGER",
    "ALTER TABLE events ADD COLUMN label TEXT",
    "ALTER TABLE events ADD COLUMN queue_name TEXT",
    "ALTER TABLE events ADD COLUMN schedule_id TEXT",
)


class QStashStore:
    def __init__(self, path: Path, *, retention_ms: int = FINISHED_RETENTION_MS) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process restarts
        self._upgrade()
        self._retention_ms = retention_ms
        self._lock = threading.Lock()
        self._event_writes = 0
        self._finishes = 0
        self._next_dedup_sweep_ms = 0

    def _upgrade(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master")}
        if version < 2 and "messages" in tables:
            for statement in _UPGRADE_FROM_1:
                self._db.execute(statement)
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

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
            "INSERT OR REPLACE INTO messages VALUES (?, ?, ?, NULL)",
            [(m.message_id, m.metadata_json(), m.body) for m in messages],
        )
        if state is not None:
            for message in messages:
                self.log(db, message, state)

    def finish_message(self, db: sqlite3.Connection, message: Message) -> None:
        """No longer pending; kept readable for the retention period."""
        now = now_ms()
        db.execute(
            "UPDATE messages SET finished_at_ms = ? WHERE message_id = ?", (now, message.message_id)
        )
        self._finishes += 1
        if self._finishes % 1000 == 0:
            db.execute("DELETE FROM messages WHERE finished_at_ms < ?", (now - self._retention_ms,))

    def delete_message(self, db: sqlite3.Connection, message_id: str) -> None:
        db.execute("DELETE FROM messages WHERE message_id = ?", (message_id,))

    def load_messages(self) -> list[Message]:
        """Every pending message, in acceptance order (queues are FIFO across restarts)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT metadata, body FROM messages WHERE finished_at_ms IS NULL"
            ).fetchall()
        messages = [Message.from_row(metadata, body) for metadata, body in rows]
        return sorted(messages, key=lambda m: m.sequence)

    def finished_message(self, message_id: str) -> Message | None:
        with self._lock:
            row = self._db.execute(
                "SELECT metadata, body FROM messages WHERE message_id = ? AND finished_at_ms > ?",
                (message_id, now_ms() - self._retention_ms),
            ).fetchone()
        return Message.from_row(*row) if row else None

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

    # -- URL groups ----------------------------------------------------------------------------
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

    # -- queues, schedules, flow-control settings ----------------------------------------------
    def queues(self) -> list[Queue]:
        with self._lock:
            rows = self._db.execute("SELECT document FROM queues").fetchall()
        return [Queue(**json.loads(document)) for (document,) in rows]

    def save_queue(self, db: sqlite3.Connection, queue: Queue) -> None:
        db.execute(
            "INSERT OR REPLACE INTO queues VALUES (?, ?)", (queue.name, json.dumps(queue.__dict__))
        )

    def delete_queue(self, db: sqlite3.Connection, name: str) -> None:
        db.execute("DELETE FROM queues WHERE name = ?", (name,))

    def schedules(self) -> list[tuple[dict[str, Any], bytes]]:
        with self._lock:
            rows = self._db.execute("SELECT document, body FROM schedules").fetchall()
        return [(json.loads(document), bytes(body)) for document, body in rows]

    def save_schedule(self, db: sqlite3.Connection, document: dict[str, Any], body: bytes) -> None:
        db.execute(
            "INSERT OR REPLACE INTO schedules VALUES (?, ?, ?)",
            (document["schedule_id"], json.dumps(document), body),
        )

    def delete_schedule(self, db: sqlite3.Connection, schedule_id: str) -> bool:
        cursor = db.execute("DELETE FROM schedules WHERE schedule_id = ?", (schedule_id,))
        return cursor.rowcount > 0

    def flow_settings(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT key, document FROM flow_keys").fetchall()
        return {key: json.loads(document) for key, document in rows}

    def save_flow_settings(self, key: str, settings: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO flow_keys VALUES (?, ?)", (key, json.dumps(settings))
            )

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
        # Expired ids are dropped once a second, found through their index: sweeping by chance
        # per message meant dozens of full-table scans a second under load, each longer as the
        # ten-minute window filled (lookups ignore expired ids either way).
        if now >= self._next_dedup_sweep_ms:
            self._next_dedup_sweep_ms = now + DEDUP_SWEEP_INTERVAL_MS
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
        at_ms: int | None = None,
    ) -> None:
        db.execute(
            "INSERT INTO events (time_ms, message_id, state, url, topic_name, error,"
            " response_status, next_delivery_ms, label, queue_name, schedule_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                at_ms or now_ms(),
                message.message_id,
                state,
                message.url,
                message.topic_name,
                error,
                response_status,
                next_delivery_ms,
                message.label,
                message.queue_name,
                message.schedule_id,
            ),
        )
        self._event_writes += 1
        if self._event_writes % 10_000 == 0:
            db.execute(
                "DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?",
                (EVENT_LOG_LIMIT,),
            )

    def events(
        self, filters: dict[str, Any], *, before: int | None, limit: int
    ) -> list[tuple[dict[str, Any], Message | None]]:
        """Newest first. `filters` maps an event column to a value, a tuple of values (IN) or,
        for `time_ms`, a (from, to) range; the message is joined while it is retained."""
        clauses, values = ["e.id < ?"], [before or 2**62]
        for column, value in filters.items():
            assert column in EVENT_COLUMNS, column  # names come from a fixed map in the API
            if column == "time_ms":
                clauses.append("e.time_ms BETWEEN ? AND ?")
                values.extend(value)
            elif isinstance(value, tuple):
                clauses.append(f"e.{column} IN ({', '.join('?' * len(value))})")
                values.extend(value)
            else:
                clauses.append(f"e.{column} = ?")
                values.append(value)
        columns = ", ".join(f"e.{column}" for column in EVENT_COLUMNS)
        sql = (
            f"SELECT {columns}, m.metadata, m.body FROM events e"  # noqa: S608
            " LEFT JOIN messages m ON m.message_id = e.message_id"
            f" WHERE {' AND '.join(clauses)} ORDER BY e.id DESC LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(sql, (*values, limit)).fetchall()
        found = []
        for row in rows:
            event = dict(zip(EVENT_COLUMNS, row[: len(EVENT_COLUMNS)], strict=True))
            metadata, body = row[len(EVENT_COLUMNS) :]
            found.append((event, Message.from_row(metadata, body) if metadata else None))
        return found


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
