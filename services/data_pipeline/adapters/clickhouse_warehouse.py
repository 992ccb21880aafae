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

import dataclasses
import operator
import re
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError
from clickhouse_connect.driver.insert import InsertContext

from data_pipeline.adapters.clickhouse_current import (
    ABANDONED_CARTS,
    CUSTOMERS,
    INVOICES,
    ORDERS,
    PRODUCTS,
    REVIEWS,
    SHIPMENTS,
    CurrentTable,
    keyed_refresh,
)
from data_pipeline.adapters.clickhouse_schema import MIGRATIONS
from data_pipeline.adapters.warehouse import LoadBatch, QueryResult, RawEvent, Warehouse
from data_pipeline.domain.model import (
    AbandonedCartVersion,
    CartItem,
    CustomerVersion,
    InvoiceLine,
    InvoiceVersion,
    OrderItem,
    OrderItemSet,
    OrderVersion,
    ProductVersion,
    ReviewVersion,
    ShipmentVersion,
)
from data_pipeline.domain.versioning import version_time_millis
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


class QueryRejected(PermanentError):
    """The warehouse refused a read query (syntax, unknown table, not read-only)."""


def _columns_of(entity_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(entity_type))


_ENTITY_TABLES: dict[type, str] = {
    OrderVersion: "order_versions",
    ProductVersion: "product_versions",
    CustomerVersion: "customer_versions",
    AbandonedCartVersion: "abandoned_cart_versions",
    InvoiceVersion: "invoice_versions",
    ShipmentVersion: "shipment_versions",
    ReviewVersion: "review_versions",
    RawEvent: "raw_events",
}
# Entities carrying a whole set of lines: stored in their version row as a Nested column, with
# `has_<name>` telling a version that carried a set (maybe empty) from one that said nothing.
_NESTED: dict[type, tuple[str, type]] = {
    AbandonedCartVersion: ("items", CartItem),
    InvoiceVersion: ("lines", InvoiceLine),
}
_ITEM_COLUMNS = _columns_of(OrderItem)
_ORDER_ROW_COLUMNS = (
    *_columns_of(OrderVersion),
    "has_items",
    *tuple(f"items.{name}" for name in _ITEM_COLUMNS),
)
_REFRESHED_BY: dict[type, CurrentTable] = {
    OrderVersion: ORDERS,
    OrderItemSet: ORDERS,
    ProductVersion: PRODUCTS,
    CustomerVersion: CUSTOMERS,
    AbandonedCartVersion: ABANDONED_CARTS,
    InvoiceVersion: INVOICES,
    ShipmentVersion: SHIPMENTS,
    ReviewVersion: REVIEWS,
}
_KEY_OF: dict[type, str] = {
    OrderVersion: "order_id",
    OrderItemSet: "order_id",
    ProductVersion: "product_id",
    CustomerVersion: "customer_id",
    AbandonedCartVersion: "cart_id",
    InvoiceVersion: "invoice_id",
    ShipmentVersion: "shipment_id",
    ReviewVersion: "review_id",
}


@dataclasses.dataclass(frozen=True)
class _Layout:
    """How one entity type becomes rows of its table."""

    columns: tuple[str, ...]
    row: Callable[[Any], tuple[Any, ...]]


def _layout(entity_type: type) -> _Layout:
    nested = _NESTED.get(entity_type)
    if nested is None:
        columns = _columns_of(entity_type)
        return _Layout(columns, operator.attrgetter(*columns))
    name, line_type = nested
    scalars = tuple(c for c in _columns_of(entity_type) if c != name)
    parts = _columns_of(line_type)
    scalar_values = operator.attrgetter(*scalars)
    line_values = operator.attrgetter(*parts)
    nothing: tuple[list[Any], ...] = tuple([] for _ in parts)

    def row(entity: Any) -> tuple[Any, ...]:
        lines = getattr(entity, name)
        if lines is None:
            return (*scalar_values(entity), 0, *nothing)
        # One attrgetter per line, then a transpose: Nested columns are parallel arrays.
        arrays = [list(c) for c in zip(*map(line_values, lines), strict=True)] if lines else []
        return (*scalar_values(entity), 1, *(arrays or nothing))

    return _Layout((*scalars, f"has_{name}", *(f"{name}.{p}" for p in parts)), row)


_LAYOUTS = {entity_type: _layout(entity_type) for entity_type in _ENTITY_TABLES}


class ClickHouseWarehouse(Warehouse):
    def __init__(self, dsn: str, database: str, *, connect_timeout: float = 5.0) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", database):
            raise ValueError(f"database name {database!r} is not a plain identifier")
        self.database = database  # interpolated into SQL: validated above
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._client: Client | None = None
        # One client per table lets a batch's tables be inserted in parallel (each insert has a
        # fixed cost, ~15 ms in chDB). Insert contexts hold each table's column types; building
        # one costs a round trip, so they are kept and dropped on any failure.
        self._table_clients: dict[str, Client] = {}
        self._insert_contexts: dict[str, InsertContext] = {}
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="warehouse-insert")
        self._write_lock = threading.Lock()
        # chDB inserts synchronously by default, and its client applies per-call settings by
        # reading, setting and restoring each one (three extra queries), so none are sent there.
        self._insert_settings = None if self.is_embedded else SERVER_INSERT_SETTINGS
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
                    self._client = self._guard("connect", self._open)
        return self._client

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
        self._insert_contexts.clear()
        self._client = None

    def _client_for(self, table: str) -> Client:
        client = self._table_clients.get(table)
        if client is None:
            client = self._guard("connect", self._open)
            self._table_clients[table] = client
        return client

    # -- schema --------------------------------------------------------------------------------
    def migrate(self) -> list[str]:
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
            for migration in MIGRATIONS:
                if migration.version in done:
                    continue
                for statement in migration.statements:
                    client.command(statement.format(db=db))
                client.insert(
                    f"{db}.schema_migrations",
                    [[migration.version, migration.name]],
                    column_names=["version", "name"],
                )
                applied.append(f"{migration.version:04d} {migration.name}")
            return applied

        return self._guard("migration", run)

    def schema_version(self) -> int:
        client = self._connect()
        result = self._guard(
            "query",
            lambda: client.query(f"SELECT max(version) FROM {self.database}.schema_migrations"),  # noqa: S608
        )
        return int(result.result_rows[0][0] or 0)

    # -- loading -------------------------------------------------------------------------------
    def write(self, batch: LoadBatch) -> None:
        groups: dict[str, tuple[Sequence[str], list[Any]]] = {}
        by_type: dict[type, list[Any]] = defaultdict(list)
        touched: dict[CurrentTable, set[tuple[int, int]]] = defaultdict(set)
        for record in [*batch.raw_events, *batch.entities]:
            by_type[type(record)].append(record)
            if type(record) in _REFRESHED_BY:
                key = getattr(record, _KEY_OF[type(record)])
                touched[_REFRESHED_BY[type(record)]].add((record.merchant_id, key))
        orders = by_type.pop(OrderVersion, [])
        item_sets = by_type.pop(OrderItemSet, [])
        if orders or item_sets:
            groups["order_versions"] = (_ORDER_ROW_COLUMNS, _order_rows(orders, item_sets))
        for entity_type, records in by_type.items():
            layout = _LAYOUTS[entity_type]
            groups[_ENTITY_TABLES[entity_type]] = (
                layout.columns,
                [layout.row(record) for record in records],
            )
        with self._write_lock:  # one batch at a time; its tables in parallel, then its objects
            self._parallel(
                {
                    f"insert into {table}": lambda t=table, c=columns, r=rows: self._insert(t, c, r)
                    for table, (columns, rows) in groups.items()
                }
            )
            self._parallel(
                {
                    f"refresh of {table.name}": lambda t=table, k=keys: self._refresh(t, k)
                    for table, keys in touched.items()
                }
            )

    def _parallel(self, actions: dict[str, Callable[[], Any]]) -> None:
        futures = [self._pool.submit(self._guard, what, action) for what, action in actions.items()]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]

    def _refresh(self, table: CurrentTable, keys: set[tuple[int, int]]) -> None:
        client = self._client_for(table.name)
        for statement in keyed_refresh(table, self.database, sorted(keys)):
            client.command(statement, settings=self._refresh_settings)

    def _insert(self, table: str, columns: Sequence[str], rows: list[Any]) -> None:
        client = self._client_for(table)
        context = self._insert_contexts.pop(table, None)
        if context is None:
            context = client.create_insert_context(
                f"{self.database}.{table}",
                column_names=list(columns),
                settings=self._insert_settings,
            )
        context.data = rows
        try:
            client.insert(context=context)
        finally:
            context.data = None
        self._insert_contexts[table] = context  # kept only after a successful insert

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
        select refuses (`CDC_REFUSED[…]`) or cannot parse is permanent, not retried."""
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
            refused = re.search(r"CDC_REFUSED\[(.*?)\]", text)
            if refused:
                raise QueryRejected(refused.group(1)) from None
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


_item_values = operator.attrgetter(*_ITEM_COLUMNS)
_order_values = operator.attrgetter(*_columns_of(OrderVersion))
_NO_ITEMS: tuple[list[Any], ...] = tuple([] for _ in _ITEM_COLUMNS)


def _order_rows(orders: list[OrderVersion], item_sets: list[OrderItemSet]) -> list[Any]:
    """One row per order version, carrying its item set (if the payload had one).

    One row per version key, even when a batch holds the same event twice (a redelivery in the
    same group commit, a duplicated import line): identical keys collapse in storage, so a
    second row without its items could replace the one with them."""
    sets = {(s.merchant_id, s.order_id, s.version): s for s in item_sets}
    rows: dict[tuple[int, int, int], Any] = {}
    for order in orders:
        key = (order.merchant_id, order.order_id, order.version)
        rows[key] = (*_order_values(order), *_items_columns(sets.get(key)))
    for key, item_set in sets.items():
        if key not in rows:  # items without an order version: the keys and the items
            header = OrderVersion(
                merchant_id=item_set.merchant_id,
                order_id=item_set.order_id,
                version=item_set.version,
                event_time=_version_time(item_set.version),
            )
            rows[key] = (*_order_values(header), *_items_columns(item_set))
    return list(rows.values())


def _items_columns(item_set: OrderItemSet | None) -> tuple[Any, ...]:
    if item_set is None:
        return (0, *_NO_ITEMS)
    # One attrgetter per item, then a transpose: the Nested columns are parallel arrays.
    columns = list(zip(*map(_item_values, item_set.items), strict=True)) if item_set.items else []
    arrays = [list(column) for column in columns] or [[] for _ in _ITEM_COLUMNS]
    return (1, *arrays)


def _version_time(version: int) -> datetime:
    return datetime.fromtimestamp(version_time_millis(version) / 1000, UTC)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:500] if text else type(error).__name__
