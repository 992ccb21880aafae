"""Load batches as ClickHouse takes them: each table's rows in Native format, plus the keys
whose current state the rows change.

Encoding is pure CPU given the tables' column types, and its result is bytes and integers, so a
bulk import builds it in worker processes (in parallel with the inserts of the previous batch,
which chDB runs outside the GIL) and the warehouse only sends it. The worker path encodes in
process: one way to write, whoever encodes.
"""

from __future__ import annotations

import array
import copy
import dataclasses
import decimal
import functools
import operator
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import accumulate, chain
from types import NoneType
from typing import Any

from clickhouse_connect.datatypes.base import ClickHouseType
from clickhouse_connect.datatypes.container import Array
from clickhouse_connect.datatypes.numeric import Decimal as DecimalType
from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.datatypes.temporal import DateTime64
from clickhouse_connect.driver import ctypes as native_helpers
from clickhouse_connect.driver.common import must_swap, write_array, write_leb128
from clickhouse_connect.driver.compression import get_compressor
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
)
from data_pipeline.adapters.warehouse import LoadBatch, RawEvent, Touched
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
from data_pipeline.errors import TransientError


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
        # One attrgetter per line, then a transpose: Nested columns are parallel arrays (tuples
        # serve: the Array writer only takes their lengths and items).
        arrays = tuple(zip(*map(line_values, lines), strict=True)) if lines else nothing
        return (*scalar_values(entity), 1, *arrays)

    return _Layout((*scalars, f"has_{name}", *(f"{name}.{p}" for p in parts)), row)


_LAYOUTS = {entity_type: _layout(entity_type) for entity_type in _ENTITY_TABLES}


_item_values = operator.attrgetter(*_ITEM_COLUMNS)
_order_values = operator.attrgetter(*_columns_of(OrderVersion))
_NO_ITEMS: tuple[list[Any], ...] = tuple([] for _ in _ITEM_COLUMNS)


def _order_rows(orders: list[OrderVersion], item_sets: list[OrderItemSet]) -> list[Any]:
    """One row per order version, carrying its item set (if the payload had one).

    One row per version key, even when a batch holds the same event twice (a redelivery in the
    same group commit, a duplicated import line): identical keys collapse in storage, so a
    second row without its items could replace the one with them."""
    sets = {(s.merchant_id, s.order_id, s.version, s.body_key): s for s in item_sets}
    rows: dict[tuple[int, int, int, int], Any] = {}
    for order in orders:
        key = (order.merchant_id, order.order_id, order.version, order.body_key)
        rows[key] = (*_order_values(order), *_items_columns(sets.get(key)))
    for key, item_set in sets.items():
        if key not in rows:  # items without an order version: the keys and the items
            header = OrderVersion(
                merchant_id=item_set.merchant_id,
                order_id=item_set.order_id,
                version=item_set.version,
                event_time=_version_time(item_set.version),
                body_key=item_set.body_key,
            )
            rows[key] = (*_order_values(header), *_items_columns(item_set))
    return list(rows.values())


def _items_columns(item_set: OrderItemSet | None) -> tuple[Any, ...]:
    if item_set is None:
        return (0, *_NO_ITEMS)
    if not item_set.items:
        return (1, *_NO_ITEMS)
    # One attrgetter per item, then a transpose: the Nested columns are parallel arrays.
    return (1, *zip(*map(_item_values, item_set.items), strict=True))


def _version_time(version: int) -> datetime:
    return datetime.fromtimestamp(version_time_millis(version) / 1000, UTC)


# Every table a load batch writes, with the columns it writes.
WRITTEN_COLUMNS: dict[str, tuple[str, ...]] = {
    "order_versions": _ORDER_ROW_COLUMNS,
    **{
        table: _LAYOUTS[entity_type].columns
        for entity_type, table in _ENTITY_TABLES.items()
        if entity_type is not OrderVersion
    },
}
CURRENT_TABLES: dict[str, CurrentTable] = {table.name: table for table in _REFRESHED_BY.values()}


@dataclasses.dataclass(frozen=True, slots=True)
class EncodedBatch:
    """`inserts`: table -> (columns, Native bytes); `touched`: current-state table name -> the
    (merchant_id, key) pairs to refresh."""

    inserts: dict[str, tuple[tuple[str, ...], bytes]]
    touched: Touched

    @property
    def empty(self) -> bool:
        return not self.inserts


class BatchEncoder:
    """Encodes load batches for tables of the given column types (`{table: (type name, ...)}`
    in `WRITTEN_COLUMNS` order, as the warehouse describes them). Picklable.
    `compression`: the codec the client would use on the wire (lz4 to a server, none to chDB)."""

    def __init__(
        self, database: str, column_types: dict[str, tuple[str, ...]], compression: str | None
    ) -> None:
        self.database = database
        self.column_types = column_types
        self.compression = compression

    def encode(self, batch: LoadBatch) -> EncodedBatch:
        inserts = {
            table: (WRITTEN_COLUMNS[table], self._native(table, rows))
            for table, rows in _rows_by_table(batch).items()
        }
        return EncodedBatch(inserts, _touched(batch))

    def _native(self, table: str, rows: list[Any]) -> bytes:
        """The rows as one Native block, written by clickhouse-connect's own column writers
        (what `client.insert` sends, in one block instead of ~2 MiB ones: the server squashes
        an insert's blocks into one part either way). Not through its insert context's data:
        that checks whether the rows are a pandas DataFrame, which imports pandas (0.2 s, in
        every import worker and in the service) when it is installed."""
        columns = WRITTEN_COLUMNS[table]
        types = _writable_types(self.column_types[table])
        context = InsertContext(f"{self.database}.{table}", columns, types)
        native = bytearray()
        write_leb128(len(columns), native)
        write_leb128(len(rows), native)
        for name, column_type, values in zip(
            columns, types, native_helpers.data_conv.pivot(rows, 0, len(rows)), strict=True
        ):
            for text in (name, column_type.insert_name):
                encoded = text.encode()
                write_leb128(len(encoded), native)
                native += encoded
            context.start_column(name)
            try:
                column_type.write_column(values, native, context)
            except Exception as error:  # a value its column type cannot hold
                # As any failed insert: retried, then dead-lettered with this reason.
                raise TransientError(
                    f"warehouse insert into {table} failed: column {name}: {error}"
                ) from error
        if not self.compression:
            return bytes(native)
        compressor = get_compressor(self.compression)
        footer = compressor.flush()  # type: ignore[no-untyped-call]
        return bytes(compressor.compress_block(native)) + bytes(footer or b"")


class _ScaledDecimal(DecimalType, registered=False):
    """Decimal(P ≤ 18, S) written from `decimal.Decimal` values by moving the exponent, where
    clickhouse-connect formats each value and parses it back (`int(Decimal(str(x)) * 10**S)`):
    the same integers (both truncate digits beyond S toward zero), in about half the time, a
    measurable share of a bulk import's encoding. Anything else goes the library's way.

    Amounts repeat (prices, shipping, tax: a few thousand distinct values in a store's year), so
    each distinct value is scaled once and looked up after (a Decimal caches its hash): a tenth
    of the cost per value. Equal values scale to the same integer whatever their exponent."""

    __slots__ = ()

    def _write_column_binary(self, column: Any, dest: bytearray, ctx: Any) -> None:
        kinds = set(map(type, column))  # the type check in C: a generator measured 3x this
        nulls = NoneType in kinds
        if kinds - {decimal.Decimal, NoneType}:
            super()._write_column_binary(column, dest, ctx)
            return
        scaled_of = _SCALED.setdefault((self.prec, self.scale), {})
        if len(scaled_of) > _SCALED_VALUES_KEPT:
            scaled_of.clear()
        known = scaled_of.get
        if nulls:
            scaled = [0 if value is None else known(value) for value in column]
        else:
            scaled = list(map(known, column))
        if None in scaled:
            scale = self.scale
            with decimal.localcontext() as context:
                context.prec = self.prec
                for index, value in enumerate(column):
                    if scaled[index] is None:
                        scaled[index] = scaled_of[value] = int(value.scaleb(scale))
        write_array(self._array_type, scaled, dest, ctx.column_name)


# (precision, scale) -> value -> its scaled integer; ~30 MB at most each, in an import's workers.
_SCALED: dict[tuple[int, int], dict[decimal.Decimal, int]] = {}
_SCALED_VALUES_KEPT = 200_000


class _FlatArray(Array, registered=False):
    """Array(T) written as the library writes it (per level: the running end offsets, then the
    flattened values; then the values as T), with each level's offsets and values built in C
    (`accumulate`, `chain`) where the library appends row by row in Python: an order row has 14
    item arrays, three of them nested, which made the arrays a third of the encoding."""

    __slots__ = ()

    def write_column_data(self, column: Any, dest: bytearray, ctx: Any) -> None:
        values_type, depth = self.element_type, 1
        while isinstance(values_type, Array):
            values_type, depth = values_type.element_type, depth + 1
        for _ in range(depth):
            offsets = array.array("Q", accumulate(map(len, column)))
            if must_swap:
                offsets.byteswap()
            dest += offsets.tobytes()
            column = list(chain.from_iterable(column))
        values_type.write_column_data(column, dest, ctx)


class _EpochDateTime64(DateTime64, registered=False):
    """DateTime64(S) written from timezone-aware datetimes as whole ticks since the epoch by
    one timedelta division (floor, as the library's `floor(timestamp)` and integer microsecond
    arithmetic are), where the library calls three Python functions per value. Naive datetimes,
    strings and integers, and the server-side naive-datetime mode, go the library's way."""

    __slots__ = ()

    def _write_column_binary(self, column: Any, dest: bytearray, ctx: Any) -> None:
        kinds = set(map(type, column))
        if kinds - {datetime, NoneType} or self.prec > 1_000_000:
            super()._write_column_binary(column, dest, ctx)
            return
        tick = timedelta(microseconds=1_000_000 // self.prec)
        try:  # a naive datetime cannot be subtracted from the (aware) epoch: TypeError
            if NoneType in kinds:
                ticks = [0 if value is None else (value - _EPOCH) // tick for value in column]
            else:
                ticks = [(value - _EPOCH) // tick for value in column]
        except TypeError:
            super()._write_column_binary(column, dest, ctx)
            return
        write_array("q", ticks, dest, ctx.column_name)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FASTER_WRITERS: dict[type, type] = {
    DecimalType: _ScaledDecimal,
    Array: _FlatArray,
    DateTime64: _EpochDateTime64,
}


@functools.cache
def _writable_types(names: tuple[str, ...]) -> tuple[ClickHouseType, ...]:
    """The column types an insert is encoded with, derived once per table layout."""
    return tuple(_fast_writers(get_from_name(name)) for name in names)


def _fast_writers(column_type: ClickHouseType) -> ClickHouseType:
    """The column type with its 64-bit-or-smaller Decimals written by `_ScaledDecimal`, its
    arrays by `_FlatArray`, its DateTime64s by `_EpochDateTime64` (also inside arrays); a copy:
    the library's registry shares its instances."""
    faster_class_of = _FASTER_WRITERS.get(type(column_type))
    if faster_class_of is None:
        return column_type
    faster = copy.copy(column_type)
    faster.__class__ = faster_class_of
    if isinstance(faster, Array):
        faster.element_type = _fast_writers(column_type.element_type)
    return faster


def _rows_by_table(batch: LoadBatch) -> dict[str, list[Any]]:
    by_type: dict[type, list[Any]] = defaultdict(list)
    for record in [*batch.raw_events, *batch.entities]:
        by_type[type(record)].append(record)
    rows: dict[str, list[Any]] = {}
    orders = by_type.pop(OrderVersion, [])
    item_sets = by_type.pop(OrderItemSet, [])
    if orders or item_sets:
        rows["order_versions"] = _order_rows(orders, item_sets)
    for entity_type, records in by_type.items():
        row = _LAYOUTS[entity_type].row
        rows[_ENTITY_TABLES[entity_type]] = [row(record) for record in records]
    return rows


def _touched(batch: LoadBatch) -> Touched:
    touched: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for record in batch.entities:
        table = _REFRESHED_BY.get(type(record))
        if table is not None:
            touched[table.name].add((record.merchant_id, getattr(record, _KEY_OF[type(record)])))
    return dict(touched)
