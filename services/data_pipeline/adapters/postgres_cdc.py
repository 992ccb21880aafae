"""The PostgreSQL side of change data capture: publication and slot, snapshot reads, and the
slot's changes through the SQL slot functions (peek, then advance once published).

The SQL functions rather than a replication connection: serverless functions cannot hold one
open, and the same code then serves `cdc run` (a loop) and a scheduled drain. Every session sets
`TimeZone = UTC` and `DateStyle = ISO`, the text formats `domain.cdc` parses.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from data_pipeline.domain.cdc import SourceType
from data_pipeline.domain.pgoutput import lsn_text, parse_lsn
from data_pipeline.errors import PermanentError, TransientError

PEEK_FETCH = 2000


class CdcSetupError(PermanentError):
    """The source cannot be captured as configured; the message says what to change."""


@dataclass(frozen=True, slots=True)
class TableShape:
    schema: str
    name: str
    columns: tuple[str, ...]
    types: tuple[SourceType, ...]
    key: tuple[str, ...]  # the primary key; every column under REPLICA IDENTITY FULL
    primary: bool = True  # whether `key` is a primary key (an index to walk in order)

    def type_of(self, column: str) -> SourceType:
        return self.types[self.columns.index(column)]


@dataclass(frozen=True, slots=True)
class SlotStatus:
    exists: bool
    confirmed_lsn: int | None = None
    current_lsn: int | None = None
    retained_bytes: int | None = None  # WAL the slot keeps on the primary's disk
    pending_bytes: int | None = None  # WAL written since the last advance


def split_table(qualified: str) -> tuple[str, str]:
    schema, dot, table = qualified.strip().partition(".")
    return (schema, table) if dot else ("public", schema)


class PostgresSource:
    def __init__(self, url: str, tables: list[str], publication: str, slot: str) -> None:
        self._url = url
        self.tables = [split_table(t) for t in tables]
        self.publication = publication
        self.slot = slot

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        try:
            connection = psycopg.connect(self._url, autocommit=autocommit, connect_timeout=10)
        except psycopg.OperationalError as error:
            raise TransientError(f"PostgreSQL unreachable: {_line(error)}") from None
        connection.execute(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET client_encoding = 'UTF8'"
        )
        return connection

    # -- setup ---------------------------------------------------------------------------------
    def setup(self) -> tuple[list[str], list[tuple[str, str]]]:
        """Publication and slot, idempotently. Returns what was done and the tables that need
        a snapshot (all of them when the slot is new, else those newly published)."""
        with self.connect() as db:
            [(wal_level,)] = db.execute("SHOW wal_level").fetchall()
            if wal_level != "logical":
                raise CdcSetupError(
                    f"wal_level is '{wal_level}'; CDC needs wal_level=logical "
                    "(postgresql.conf or the managed service's parameter group; then restart)"
                )
            [(user, can)] = db.execute(
                "SELECT current_user, rolreplication OR rolsuper FROM pg_roles "
                "WHERE rolname = current_user"
            ).fetchall()
            if not can:
                raise CdcSetupError(
                    f"role {user} lacks REPLICATION: ALTER ROLE {user} WITH REPLICATION"
                )
            for schema, table in self.tables:
                self.shape(db, schema, table)  # refuses tables without a key
            done: list[str] = []
            published = {
                (schema, table)
                for schema, table in db.execute(
                    "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
                    (self.publication,),
                ).fetchall()
            }
            exists = db.execute(
                "SELECT 1 FROM pg_publication WHERE pubname = %s", (self.publication,)
            ).fetchone()
            listing = sql.SQL(", ").join(sql.Identifier(s, t) for s, t in self.tables)
            if not exists:
                db.execute(
                    sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                        sql.Identifier(self.publication), listing
                    )
                )
                done.append(f"created publication {self.publication}")
            elif published != set(self.tables):
                db.execute(
                    sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(
                        sql.Identifier(self.publication), listing
                    )
                )
                done.append(f"publication {self.publication} now lists {len(self.tables)} tables")
            new_slot = not db.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)
            ).fetchone()
            if new_slot:
                # The slot first, the snapshot after: every change from here on is streamed,
                # and a snapshot row loses to any streamed change of its key.
                db.execute(
                    "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (self.slot,)
                )
                done.append(f"created replication slot {self.slot}")
            to_snapshot = list(self.tables) if new_slot else sorted(set(self.tables) - published)
            return done, to_snapshot

    def shape(self, db: psycopg.Connection[Any], schema: str, table: str) -> TableShape:
        """Columns, their types (enums and arrays of enums from the catalog) and the key."""
        rows = db.execute(
            """SELECT a.attname, a.atttypid, a.atttypmod, t.typtype = 'e', t.typelem,
                      coalesce(e.typtype = 'e', false), format_type(a.atttypid, a.atttypmod),
                      coalesce(i.indisprimary, false), c.relreplident
               FROM pg_attribute a
               JOIN pg_class c ON c.oid = a.attrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_type t ON t.oid = a.atttypid
               LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typelem <> 0
               LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
                    AND a.attnum = ANY(i.indkey)
               WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0
                     AND NOT a.attisdropped
               ORDER BY a.attnum""",
            (schema, table),
        ).fetchall()
        if not rows:
            raise CdcSetupError(f"table {schema}.{table} does not exist")
        key = tuple(r[0] for r in rows if r[7])
        primary = bool(key)
        if not key:
            if rows[0][8] != "f":
                raise CdcSetupError(
                    f"table {schema}.{table} has no primary key: add one, or "
                    f"ALTER TABLE {schema}.{table} REPLICA IDENTITY FULL"
                )
            key = tuple(r[0] for r in rows)
        shape = TableShape(
            schema=schema,
            name=table,
            columns=tuple(r[0] for r in rows),
            types=tuple(
                SourceType(
                    oid=r[1],
                    modifier=r[2],
                    is_enum=r[3],
                    element_oid=r[4] or None,
                    element_is_enum=r[5],
                    name=r[6],
                )
                for r in rows
            ),
            key=key,
            primary=primary,
        )
        return shape

    # -- reading -------------------------------------------------------------------------------
    def snapshot(self, shape: TableShape, batch: int) -> Iterator[list[tuple[Any, ...]]]:
        """Every row's values in PostgreSQL's text output, in batches (a server-side cursor:
        memory does not grow with the table)."""
        with self.connect(autocommit=False) as db:
            query = sql.SQL("SELECT {} FROM {}").format(
                # The type's output function, as pgoutput and COPY write it: `::text` would
                # strip char(n)'s padding, which a streamed change of the same row keeps.
                sql.SQL(", ").join(
                    sql.SQL("CASE WHEN {0} IS NOT NULL THEN format('%s', {0}) END").format(
                        sql.Identifier(c)
                    )
                    for c in shape.columns
                ),
                sql.Identifier(shape.schema, shape.name),
            )
            with db.cursor(name="cdc_snapshot") as cursor:
                cursor.itersize = batch
                cursor.execute(query)
                while rows := cursor.fetchmany(batch):
                    yield rows

    def key_ranges(
        self, shape: TableShape, rows_per_range: int
    ) -> Iterator[tuple[list[str] | None, list[str] | None]]:
        """The table cut into ranges of about `rows_per_range` rows by its primary key: (after,
        through] as the keys' text, None for an open end. Each boundary is one walk of the key's
        index; no row is read. A table without a primary key is one range."""
        if not shape.primary:
            yield None, None
            return
        after: list[str] | None = None
        with self.connect() as db:
            while True:
                query = sql.SQL("SELECT {} FROM {} {} ORDER BY {} OFFSET %s LIMIT 1").format(
                    sql.SQL(", ").join(  # aliased: ORDER BY k would sort by the text
                        sql.SQL("{}::text AS {}").format(sql.Identifier(k), sql.Identifier(f"b{i}"))
                        for i, k in enumerate(shape.key)
                    ),
                    sql.Identifier(shape.schema, shape.name),
                    _where(shape, after, None),
                    sql.SQL(", ").join(map(sql.Identifier, shape.key)),
                )
                row = db.execute(query, [*(after or []), rows_per_range - 1]).fetchone()
                if row is None:
                    yield after, None
                    return
                yield after, list(row)
                after = list(row)

    def snapshot_text(
        self,
        shape: TableShape,
        chunk_bytes: int,
        after: list[str] | None = None,
        through: list[str] | None = None,
    ) -> Iterator[tuple[bytes, int]]:
        """The rows of one key range (every row without bounds) in `COPY … TO STDOUT`'s text
        format (tab-separated, `\\N` for NULL, each value through its type's output function,
        as pgoutput writes it), cut at row ends into chunks of about `chunk_bytes`: (text,
        rows). The rows never become Python objects."""
        query = sql.SQL("COPY (SELECT {} FROM {} {}) TO STDOUT").format(
            sql.SQL(", ").join(map(sql.Identifier, shape.columns)),
            sql.Identifier(shape.schema, shape.name),
            _where(shape, after, through),
        )
        params = [*(after or []), *(through or [])]  # bound client-side (COPY takes none)
        with self.connect() as db, db.cursor() as cursor, cursor.copy(query, params) as copy:
            pending = bytearray()
            for data in copy:
                pending += data
                if len(pending) >= chunk_bytes:
                    cut = pending.rfind(b"\n") + 1  # COPY escapes newlines inside values
                    chunk = bytes(pending[:cut])
                    del pending[:cut]
                    yield chunk, chunk.count(b"\n")
            if pending:
                yield bytes(pending), pending.count(b"\n")

    def peek(self, max_changes: int) -> Iterator[tuple[int, bytes]]:
        """The slot's next messages (whole transactions, at least up to `max_changes`), without
        consuming them: (lsn, pgoutput message)."""
        with self.connect(autocommit=False) as db, db.cursor(name="cdc_peek") as cursor:
            cursor.itersize = PEEK_FETCH
            try:
                cursor.execute(
                    "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes("
                    "%s, NULL, %s, 'proto_version', '1', 'publication_names', %s)",
                    (self.slot, max_changes, self.publication),
                )
            except psycopg.errors.UndefinedObject as error:
                raise CdcSetupError(f"{_line(error)}: run `salla-pipeline cdc setup`") from None
            for lsn, data in cursor:
                yield parse_lsn(lsn), bytes(data)

    def advance(self, lsn: int) -> None:
        """Confirm everything up to `lsn` (a commit's end): the slot frees that WAL."""
        with self.connect() as db:
            db.execute(
                "SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (self.slot, lsn_text(lsn))
            )

    def status(self) -> SlotStatus:
        with self.connect() as db:
            row = db.execute(
                "SELECT confirmed_flush_lsn::text, pg_current_wal_lsn()::text,"
                " pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint,"
                " pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint"
                " FROM pg_replication_slots WHERE slot_name = %s",
                (self.slot,),
            ).fetchone()
        if row is None:
            return SlotStatus(exists=False)
        return SlotStatus(True, parse_lsn(row[0]), parse_lsn(row[1]), int(row[2]), int(row[3]))


def _where(shape: TableShape, after: list[str] | None, through: list[str] | None) -> sql.Composable:
    """`WHERE (k1, k2) > (%s::t1, %s::t2) AND (k1, k2) <= (…)`: the keys compared as a row, in
    the index's order, each bound cast to its column's type (the catalog's own spelling)."""
    columns = sql.SQL("({})").format(sql.SQL(", ").join(map(sql.Identifier, shape.key)))
    values = sql.SQL("({})").format(
        sql.SQL(", ").join(sql.SQL("%s::") + sql.SQL(shape.type_of(k).name) for k in shape.key)
    )
    bounds = [
        sql.SQL("{} {} {}").format(columns, sql.SQL(operator), values)
        for operator, bound in ((">", after), ("<=", through))
        if bound is not None
    ]
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(bounds) if bounds else sql.SQL("")


def _line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__
