"""ClickHouse through clickhouse-connect: one client and one SQL for chDB and ClickHouse Cloud.

Inserts follow ClickHouse's advice for many small writes: callers batch (see
`service_layer.loader`), and on a ClickHouse server every insert also asks the server to buffer
and *wait* for the buffer to be written (`async_insert=1, wait_for_async_insert=1`), which
batches across the many function instances of production; a returned insert is durable and
nothing is fire-and-forget. Embedded chDB has one writer (our group commit already batches), so
it inserts synchronously: async buffering there only added ~23 ms per insert (measured).

After the inserts, the batch's objects get their current state recomputed from all their
stored versions (adapters/clickhouse_current.py): a load returns only once the read contract
shows it. On a ClickHouse server those reads ask for sequential consistency, so a replica never
computes a state from fewer versions than were inserted.

Every driver failure becomes TransientError here, once: the domain has validated the data, so
what is left is the warehouse being unavailable.
"""

from __future__ import annotations

import fcntl
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from data_pipeline.adapters.clickhouse_access import READER_SETTINGS
from data_pipeline.adapters.clickhouse_baseline import load_baseline
from data_pipeline.adapters.clickhouse_batches import (
    CURRENT_TABLES,
    WRITTEN_COLUMNS,
    BatchEncoder,
    EncodedBatch,
)
from data_pipeline.adapters.clickhouse_current import (
    SHARED_SNAPSHOT,
    CurrentTable,
    joins_item_sets,
    keyed_refresh,
)
from data_pipeline.adapters.clickhouse_schema import MIGRATIONS
from data_pipeline.adapters.warehouse import LoadBatch, QueryResult, Touched, Warehouse
from data_pipeline.errors import PermanentError, TransientError

SERVER_INSERT_SETTINGS = {"async_insert": 1, "wait_for_async_insert": 1}
# The snapshot refresh reads what this loader (and every other) just inserted; so does the embed
# step. https://clickhouse.com/docs/resources/support-center/knowledge-base/data-management/read-consistency
SERVER_REFRESH_SETTINGS = {"select_sequential_consistency": 1}


# Parsing and conversion errors: the data itself is wrong, a retry cannot help.
_UNPARSABLE_CODES = (6, 26, 27, 38, 41, 69, 72, 117, 321, 395, 407)


def sql_string(text: str) -> str:
    """A ClickHouse string literal (names and values we build SQL from)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def refuse_if(condition: str, reason: str) -> str:
    """SQL that is 0 where `condition` is false and otherwise fails the whole statement with
    `reason`; a statement this adapter runs reports that failure as a permanent
    `QueryRejected(reason)`, not as a transient error."""
    detail = reason.replace("]", ")")  # the marker's end stays unambiguous
    return f"throwIf({condition}, {sql_string(f'REFUSED[{detail}]')})"


def _refusal(error_text: str) -> str | None:
    found = re.search(r"REFUSED\[(.*?)\]", error_text)
    return found.group(1) if found else None


class QueryRejected(PermanentError):
    """The warehouse refused a read query (syntax, unknown table, not read-only)."""


class ClickHouseWarehouse(Warehouse):
    def __init__(self, dsn: str, database: str, *, connect_timeout: float = 5.0) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", database):
            raise ValueError(f"database name {database!r} is not a plain identifier")
        self.database = database  # interpolated into SQL: validated above
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._client: Client | None = None
        # One client per table lets a batch's tables be inserted in parallel (each insert has a
        # fixed cost, ~15 ms in chDB). The encoder holds the tables' column types; describing
        # them costs a round trip, so it is kept, and dropped on any failure and by migrations.
        self._table_clients: dict[str, Client] = {}
        self._encoder: BatchEncoder | None = None
        self._shared_snapshot: bool | None = None  # whether the server has SHARED_SNAPSHOT
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="warehouse-insert")
        self._write_lock = threading.Lock()
        # chDB inserts synchronously by default, and its client applies per-call settings by
        # reading, setting and restoring each one (three extra queries), so none are sent there.
        self._insert_settings = None if self.is_embedded else SERVER_INSERT_SETTINGS
        # The wire codec of encoded batches: what clickhouse-connect sends a server; chDB, with
        # no wire, takes them plain.
        self._compression = None if self.is_embedded else "lz4"
        self._refresh_settings = None if self.is_embedded else SERVER_REFRESH_SETTINGS
        self._lock = threading.Lock()

    # -- connection ----------------------------------------------------------------------------
    @property
    def is_embedded(self) -> bool:
        return urlsplit(self._dsn).scheme == "chdb"

    def _connect(self) -> Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._guard_connect(self._open_reading)
        return self._client

    def _guard_connect(self, open_client: Callable[[], Client]) -> Client:
        try:
            client: Client = self._guard("connect", open_client)
        except TransientError as error:
            directory = Path(urlsplit(self._dsn).path)
            if self.is_embedded and _held_by_another_process(directory):
                raise WarehouseInUse(
                    f"the warehouse directory {directory} is in use by another process "
                    "(chDB opens a directory in one process at a time)"
                ) from error
            raise
        return client

    def _open_reading(self) -> Client:
        """The client that reads. Embedded chDB has no users: the local stack's reads run with the
        settings ClickHouse Cloud gives the app's reader user (clickhouse_access), as a session."""
        client = self._open()
        if self.is_embedded:
            for name in _known_settings(client, READER_SETTINGS):
                client.command(f"SET {name} = {int(READER_SETTINGS[name])}")
        return client

    def known_settings(self, names: Iterable[str]) -> frozenset[str]:
        """Which of these settings this server has (they come and go between versions)."""
        client = self._connect()
        return self._guard("read settings", lambda: _known_settings(client, names))

    def _open(self) -> Client:
        if self.is_embedded:
            return clickhouse_connect.get_client(dsn=self._dsn)
        return clickhouse_connect.get_client(
            dsn=self._dsn,
            connect_timeout=self._connect_timeout,
            send_receive_timeout=60,
            autogenerate_session_id=False,  # sessions forbid concurrent queries on one client
            compress="lz4",
        )

    def _guard(self, what: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except (ClickHouseError, OSError) as error:
            raise TransientError(f"warehouse {what} failed: {_first_line(error)}") from error

    def ping(self) -> None:
        client = self._connect()
        self._guard("ping", lambda: client.command("SELECT 1"))

    def close(self) -> None:
        for client in [*self._table_clients.values(), self._client]:
            if client is not None:
                client.close()
        self._table_clients.clear()
        self._encoder = None
        self._client = None

    def _client_for(self, table: str) -> Client:
        client = self._table_clients.get(table)
        if client is None:
            client = self._guard_connect(self._open)
            self._table_clients[table] = client
        return client

    # -- schema --------------------------------------------------------------------------------
    def migrate(self, *, baseline: bool = True) -> list[str]:
        """Apply the migrations this database lacks; a new embedded one gets the baseline
        schema first (clickhouse_baseline.py), unless `baseline` is False."""
        client = self._connect()
        db = self.database

        def run() -> list[str]:
            client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
            client.command(
                f"""CREATE TABLE IF NOT EXISTS {db}.schema_migrations (
                    version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
                ) ENGINE = ReplacingMergeTree ORDER BY version"""
            )
            done = {
                row[0]
                for row in client.query(f"SELECT version FROM {db}.schema_migrations").result_rows  # noqa: S608
            }
            applied = []
            if not done and baseline and self.is_embedded:
                done = self._apply_baseline(client)
                applied = [f"{m.version:04d} {m.name}" for m in MIGRATIONS if m.version in done]
            for migration in MIGRATIONS:
                if migration.version in done:
                    continue
                for statement in migration.statements:
                    client.command(statement.format(db=db))
                # A statement, not `client.insert`: its insert path imports pandas (0.2 s of
                # every new data dir's start) to check whether the rows are a DataFrame.
                client.command(
                    f"INSERT INTO {db}.schema_migrations (version, name) "  # noqa: S608 (checked name)
                    "VALUES ({version:UInt32}, {name:String})",
                    parameters={"version": migration.version, "name": migration.name},
                )
                applied.append(f"{migration.version:04d} {migration.name}")
            return applied

        self._encoder = None  # column types may have changed
        return self._guard("migration", run)

    def _apply_baseline(self, client: Client) -> set[int]:
        """The baseline's statements and the versions it stands for, recorded in one insert;
        none when it is absent or ahead of the migrations this code has (a test narrowing
        them to build an earlier layout)."""
        schema = load_baseline()
        if schema is None or schema.version > max(m.version for m in MIGRATIONS):
            return set()
        for statement in schema.for_database(self.database):
            client.command(statement)
        included = [m for m in MIGRATIONS if m.version <= schema.version]
        client.command(
            f"INSERT INTO {self.database}.schema_migrations (version, name) VALUES "  # noqa: S608
            + ", ".join(f"({m.version}, {sql_string(m.name)})" for m in included)
        )
        return {m.version for m in included}

    def schema_version(self) -> int:
        client = self._connect()
        result = self._guard(
            "query",
            lambda: client.query(f"SELECT max(version) FROM {self.database}.schema_migrations"),  # noqa: S608
        )
        return int(result.result_rows[0][0] or 0)

    # -- loading -------------------------------------------------------------------------------
    def write(self, batch: LoadBatch) -> None:
        self.write_encoded(self.batch_encoder().encode(batch))

    def batch_encoder(self) -> BatchEncoder:
        """What turns load batches into this warehouse's inserts (picklable: a bulk import
        encodes in worker processes)."""
        if self._encoder is None:
            self._encoder = self._guard("describe", self._describe)
        return self._encoder

    def _describe(self) -> BatchEncoder:
        tables = ", ".join(sql_string(table) for table in WRITTEN_COLUMNS)
        result = self._connect().query(
            f"SELECT table, name, type FROM system.columns "  # noqa: S608 (our own names)
            f"WHERE database = {sql_string(self.database)} AND table IN ({tables})"
        )
        described: dict[str, dict[str, str]] = {}
        for table, name, kind in result.result_rows:
            described.setdefault(table, {})[name] = kind
        try:
            types = {
                table: tuple(described[table][column] for column in columns)
                for table, columns in WRITTEN_COLUMNS.items()
            }
        except KeyError as missing:
            raise TransientError(f"warehouse schema is not migrated: no {missing}") from None
        return BatchEncoder(self.database, types, self._compression)

    def write_encoded(self, encoded: EncodedBatch, *, refresh: bool = True) -> Touched:
        """Insert an encoded batch (its tables in parallel), then refresh the current state of
        the objects it touched; returns once the read contract shows it (with `refresh`)."""
        with self._write_lock:  # one batch at a time; its tables in parallel, then its objects
            try:
                self._parallel(
                    {
                        f"insert into {table}": lambda t=table, c=columns, d=data: self._insert(
                            t, c, d
                        )
                        for table, (columns, data) in encoded.inserts.items()
                    }
                )
                if refresh:
                    self._refresh_all(encoded.touched)
            except TransientError:
                self._encoder = None  # a schema change shows as a failed insert: describe again
                raise
        return encoded.touched

    def refresh(self, touched: Touched) -> None:
        with self._write_lock:
            self._refresh_all(touched)

    def _refresh_all(self, touched: Touched) -> None:
        self._parallel(
            {
                f"refresh of {name}": lambda t=CURRENT_TABLES[name], k=keys: self._refresh(t, k)
                for name, keys in touched.items()
                if keys
            }
        )

    def _parallel(self, actions: dict[str, Callable[[], Any]]) -> None:
        futures = [self._pool.submit(self._guard, what, action) for what, action in actions.items()]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]

    def _refresh(self, table: CurrentTable, keys: set[tuple[int, int]]) -> None:
        client = self._client_for(table.name)
        # Asked once, by the first refresh that could join (the real-time path's never do).
        if self._shared_snapshot is None and joins_item_sets(table, len(keys)):
            self._shared_snapshot = SHARED_SNAPSHOT in _known_settings(client, [SHARED_SNAPSHOT])
        statements = keyed_refresh(
            table, self.database, sorted(keys), shared_snapshot=bool(self._shared_snapshot)
        )
        for statement in statements:
            client.command(statement, settings=self._refresh_settings)

    def _insert(self, table: str, columns: Sequence[str], native: bytes) -> None:
        self._client_for(table).raw_insert(
            f"{self.database}.{table}",
            list(columns),
            insert_block=native,
            settings=self._insert_settings,
            fmt="Native",
            compression=self._compression,
        )

    def insert_rows(self, table: str, columns: Sequence[str], rows: list[Any]) -> None:
        """Insert plain rows into one of our own tables (the local vector index)."""
        self.insert_into(self.database, table, columns, rows)

    def insert_into(
        self, database: str, table: str, columns: Sequence[str], rows: list[Any]
    ) -> None:
        """Insert plain rows into a table of any of our databases (change data capture)."""
        client = self._client_for(f"{database}.{table}")
        self._guard(
            f"insert into {database}.{table}",
            lambda: client.insert(
                table,
                rows,
                column_names=list(columns),
                database=database,
                settings=self._insert_settings,
            ),
        )

    def insert_text(self, into: str, structure: str, select: str, data: bytes) -> None:
        """`INSERT INTO into SELECT select` over tab-separated `data` read as `structure`: the
        rows never become Python objects (change data capture's snapshot). The server reads
        the data from the request body (`input()`); chDB, which has no request, from a
        temporary file (`file()`), as clickhouse-connect's own chDB inserts do. A value the
        select refuses (`refuse_if`) or cannot parse is permanent, not retried."""
        head = f"INSERT INTO {into} SELECT {select} FROM "  # noqa: S608 (built from quoted names)
        client = self._connect()
        try:
            if self.is_embedded:
                with tempfile.NamedTemporaryFile(suffix=".tsv") as staged:
                    staged.write(data)
                    staged.flush()
                    source = f"file({sql_string(staged.name)}, 'TabSeparated', "
                    client.command(head + source + f"{sql_string(structure)})")
            else:
                source = f"input({sql_string(structure)}) FORMAT TabSeparated"
                client.command(head + source, data=data, settings=self._insert_settings)
        except ClickHouseError as error:
            text = str(error)
            refused = _refusal(text)
            if refused is not None:
                raise QueryRejected(refused) from None
            if any(f"Code: {code}." in text for code in _UNPARSABLE_CODES):
                raise QueryRejected(f"unparsable snapshot text: {_first_line(error)}") from None
            raise TransientError(f"warehouse insert failed: {_first_line(error)}") from error
        except OSError as error:
            raise TransientError(f"warehouse insert failed: {_first_line(error)}") from error

    def execute(self, statement: str) -> None:
        """DDL and INSERT ... SELECT of our own (change data capture keeps its tables' shapes
        in step with the source)."""
        client = self._connect()
        self._guard("statement", lambda: client.command(statement))

    # -- reading -------------------------------------------------------------------------------
    def query(
        self,
        sql: str,
        parameters: dict[str, Any] | None = None,
        *,
        read_after_write: bool = False,
    ) -> QueryResult:
        """`read_after_write`: the reader must see inserts another instance just confirmed.
        Through ClickHouse Cloud's load balancer a query can land on a replica that has not yet
        seen them; `select_sequential_consistency` makes it catch up first (Cloud knowledge
        base, "read consistency"). Not sent to chDB: a single node is always consistent."""
        client = self._connect()
        settings: dict[str, Any] = {"readonly": 2}
        if read_after_write and not self.is_embedded:
            settings.update(SERVER_REFRESH_SETTINGS)
        try:
            result = client.query(sql, parameters=parameters, settings=settings)
        except (OperationalError, OSError) as error:
            raise TransientError(f"warehouse query failed: {_first_line(error)}") from error
        except ClickHouseError as error:
            raise QueryRejected(_first_line(error)) from None
        except (TypeError, ValueError) as error:  # a parameter the client cannot bind
            raise QueryRejected(f"query parameters: {_first_line(error)}") from None
        return QueryResult(columns=tuple(result.column_names), rows=list(result.result_rows))


def _known_settings(client: Client, names: Iterable[str]) -> frozenset[str]:
    rows = client.query(
        "SELECT name FROM system.settings WHERE name IN {names:Array(String)}",
        parameters={"names": list(names)},
    ).result_rows
    return frozenset(name for (name,) in rows)


class WarehouseInUse(TransientError):
    """The embedded warehouse's directory is open in another process (a running local stack)."""


def _held_by_another_process(directory: Path) -> bool:
    """Whether a ClickHouse engine holds `directory`: the engine keeps an exclusive `flock` on
    its `status` file while it runs (chDB only says its engine failed to start)."""
    try:
        with (directory / "status").open("rb") as status:
            try:
                fcntl.flock(status, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(status, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:500] if text else type(error).__name__
