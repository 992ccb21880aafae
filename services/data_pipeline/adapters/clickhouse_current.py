"""Current-state tables: the read contract, materialized, exact at any moment.

Every version of every object stays in its `*_versions` table (the source of truth, never
rewritten). After each load the loader recomputes the current state of the objects the batch
touched, in ClickHouse, from *all* their stored versions (per field the newest version that
carried it, as before), and inserts it into `*_current`, a ReplacingMergeTree whose version is
the number of distinct stored versions the snapshot was computed from (`versions`).

Why that version: reads are linearizable (one server, or ClickHouse Cloud with
`select_sequential_consistency`), so a snapshot computed later saw a superset of the versions an
earlier one saw; equal counts mean equal sets. Whatever the interleaving of concurrent loaders,
the last snapshot computed saw every version whose insert had completed, so it has the highest
count and wins; a stale snapshot written late loses. Duplicated or replayed versions do not
change the count (`*_versions` collapse identical keys).

The contract views read `*_current FINAL` per partition. Time-ranged tables are partitioned by
the year of the object's creation, so a range query opens only its years and old years settle
into one merged part each (min_age_to_force_merge), which FINAL reads without merging. An object
stays in one partition for good, with one exception: its creation time can be unknown at first
(a partial payload arrived before the full one) and known later. The refresh then writes a
tombstone into the partition the object left (`version = 0`, `is_deleted = 1`, with as many
versions as the new snapshot), so no object is ever shown twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

PARTITION_SETTINGS = {"do_not_merge_across_partitions_select_final": 1}


def newest_first(table: str = "") -> str:
    """(version, body_key) as one UInt128 that orders exactly as the pair does, for argMax over
    a table's versions (`table`: the qualifier, e.g. "v"). argMax over a tuple compares generic
    values; over one number it takes ClickHouse's numeric path: a snapshot of 22 argMax columns
    measured 5x faster (1 M versions: 0.53 s against 2.60 s, same results)."""
    prefix = f"{table}." if table else ""
    return f"bitOr(bitShiftLeft(toUInt128({prefix}version), 64), toUInt128({prefix}body_key))"


@dataclass(frozen=True)
class CurrentTable:
    """One current-state table. Migrations build their SQL from these definitions, so changing
    one means freezing the old definition for the migrations that used it (clickhouse_schema
    does so for migration 4)."""

    name: str
    source: str
    key: str  # the object id column; every table is keyed (merchant_id, key)
    fields: tuple[str, ...]  # newest non-null value wins
    deletable: bool = False
    # Fields with a rule of their own: (column, aggregate expression over the versions, whose
    # columns are qualified `v.`: unqualified, ClickHouse would resolve them to the aliases).
    aggregates: tuple[tuple[str, str], ...] = ()
    # A whole set (order lines, cart lines, invoice lines): the newest version that carried one.
    nested: str = "items"
    items: tuple[str, ...] = ()
    time_column: str | None = None  # partitioned by its year
    # Fields a payload can clear (its version lists them in `cleared`): the newest version that
    # set or cleared the field decides, so a removed coupon does not keep its old code.
    clearable: tuple[str, ...] = ()
    # What orders the stored rows of an object, newest last, and tells them apart: the version,
    # then the body's key (two distinct bodies can share a version: domain/versioning.py).
    version_key: tuple[str, ...] = ("version", "body_key")
    # The set flattened into a table of its own, one row per line (see order lines below);
    # the snapshot then also carries `max_lines`.
    lines: str | None = None

    @property
    def newest(self) -> str:
        """The ordering expression for argMax over the versions: the pair packed into one
        number, or `version` alone (the definitions migrations 4-7 froze)."""
        return newest_first() if self.version_key == ("version", "body_key") else "version"

    @property
    def columns(self) -> tuple[str, ...]:
        nested = tuple(f"{self.nested}.{item}" for item in self.items)
        return (
            "merchant_id",
            self.key,
            "versions",
            "is_deleted",
            "version",
            *self.fields,
            *(column for column, _ in self.aggregates),
            *(("max_lines",) if self.lines else ()),
            "updated_at",
            *nested,
        )


ORDER_ITEMS = (
    "item_id",
    "product_id",
    "sku",
    "name",
    "quantity",
    "unit_price",
    "discount",
    "tax",
    "line_total",
    "currency",
    "option_names",
    "option_values",
    "option_prices",
    "variant_key",
)
ORDERS = CurrentTable(
    name="orders_current",
    lines="order_lines_current",
    source="order_versions",
    key="order_id",
    fields=(
        "reference_id",
        "status",
        "status_name",
        "total",
        "sub_total",
        "shipping_cost",
        "tax",
        "discount",
        "currency",
        "payment_method",
        "customer_id",
        "city",
        "country",
        "source",
        "created_at",
        "cod_fee",
        "coupon_code",
        "is_draft",
    ),
    deletable=True,
    items=ORDER_ITEMS,
    time_column="created_at",
    clearable=("discount", "payment_method", "cod_fee", "coupon_code"),
)
PRODUCTS = CurrentTable(
    name="products_current",
    source="product_versions",
    key="product_id",
    fields=(
        "name",
        "description",
        "sku",
        "price",
        "sale_price",
        "currency",
        "status",
        "product_type",
        "quantity",
        "category",
        "cost_price",
    ),
    # The end of the sale whose price is shown: from the same version (a newer sale without an
    # end must not inherit an older sale's end).
    aggregates=(
        (
            "sale_ends_at",
            f"argMaxIf(v.sale_ends_at, {newest_first('v')}, v.sale_price IS NOT NULL)",
        ),
    ),
    deletable=True,
    clearable=("description", "sku", "sale_price", "quantity", "category", "cost_price"),
)
CUSTOMERS = CurrentTable(
    name="customers_current",
    source="customer_versions",
    key="customer_id",
    fields=("city", "country", "country_code", "currency"),
    clearable=("city", "country"),
    # Sign-up time (customer.created), else first seen; never moved by a later update.
    aggregates=(("created_at", "coalesce(min(v.created_at), min(v.event_time))"),),
)
CART_ITEMS = ("product_id", "quantity", "unit_price", "line_total")
ABANDONED_CARTS = CurrentTable(
    name="abandoned_carts_current",
    source="abandoned_cart_versions",
    key="cart_id",
    fields=(
        "customer_id",
        "total",
        "subtotal",
        "discount",
        "currency",
        "item_count",
        "coupon_code",
        "created_at",
        "checkout_url",
        "recovered_order_id",
    ),
    # A purchased cart stays purchased: a late update of the abandoned cart cannot reopen it.
    aggregates=(
        ("recovered_at", "min(v.recovered_at)"),
        (
            "status",
            "if(min(v.recovered_at) IS NOT NULL, 'purchased', "
            f"argMax(v.status, {newest_first('v')}))",
        ),
    ),
    items=CART_ITEMS,
    time_column="created_at",
    clearable=("discount", "coupon_code"),
)
INVOICE_LINES = (
    "item_id",
    "product_id",
    "sku",
    "name",
    "quantity",
    "unit_price",
    "tax",
    "tax_percent",
    "total",
)
INVOICES = CurrentTable(
    name="invoices_current",
    source="invoice_versions",
    key="invoice_id",
    fields=(
        "order_id",
        "number",
        "invoice_type",
        "issued_at",
        "payment_method",
        "sub_total",
        "shipping_cost",
        "cod_fee",
        "discount",
        "tax",
        "tax_percent",
        "total",
        "currency",
    ),
    nested="lines",
    items=INVOICE_LINES,
    clearable=("discount", "cod_fee", "payment_method"),
)
SHIPMENTS = CurrentTable(
    name="shipments_current",
    source="shipment_versions",
    key="shipment_id",
    fields=(
        "order_id",
        "shipment_type",
        "status",
        "courier_id",
        "courier_name",
        "tracking_number",
        "shipping_cost",
        "cod_amount",
        "currency",
        "is_international",
    ),
    aggregates=(
        ("created_at", "min(v.created_at)"),
        ("shipped_at", "min(v.shipped_at)"),
        ("delivered_at", "min(v.delivered_at)"),
    ),
    clearable=("tracking_number", "courier_name", "courier_id", "cod_amount"),
)
REVIEWS = CurrentTable(
    name="product_reviews_current",
    source="review_versions",
    key="review_id",
    fields=(
        "review_type",
        "product_id",
        "order_id",
        "rating",
        "content",
        "content_withheld",
        "created_at",
    ),
    clearable=("content",),
)
CURRENT_TABLES = (
    ORDERS,
    PRODUCTS,
    CUSTOMERS,
    ABANDONED_CARTS,
    INVOICES,
    SHIPMENTS,
    REVIEWS,
)


def _snapshot_select(table: CurrentTable, db: str, where: str, *, source: str = "") -> str:
    """Per object: its state from every stored version (`version` is aliased away: ClickHouse
    would resolve it inside the other aggregates). `source`: the versions to read, if not the
    table's."""
    newest = table.newest
    deleted = f"argMax(is_deleted, {newest})" if table.deletable else "toUInt8(0)"
    fields = [_field(field, field in table.clearable, newest) for field in table.fields]
    rules = [f"{expression} AS {column}" for column, expression in table.aggregates]
    nested, flag = table.nested, f"has_{table.nested}"
    items = [f"argMaxIf({nested}.{i}, {newest}, {flag}) AS `{nested}.{i}`" for i in table.items]
    if table.lines:
        rules.append(f"toUInt32(max(length(v.{nested}.item_id))) AS max_lines")
    distinct = ", ".join(table.version_key)
    return (
        f"SELECT merchant_id, {table.key}, toUInt32(uniqExact({distinct})) AS versions, "
        f"{deleted} AS is_deleted, max(version) AS latest_version, "
        + ", ".join([*fields, *rules, "max(event_time) AS updated_at", *items])
        + f" FROM {source or f'{db}.{table.source}'} AS v {where} GROUP BY merchant_id, {table.key}"
    )


# From how many keys a refresh takes item sets by a join (`_joined_snapshot_select`): below it
# the join's fixed cost loses (1 order: 45 ms against 35; 1,000: 83 against 66), from about
# 4,000-8,000 it wins (16,000 in a row: 0.26-0.29 s against 0.42-0.45).
JOINED_ITEMS_FROM_KEYS = 8_000
# The joined snapshot reads the versions twice, and two reads of one table in a query may see
# different parts (an insert landing between them: ClickHouse issue 66645) unless they share
# one snapshot. Servers without this setting (before 25.6) refresh with the aggregate instead.
SHARED_SNAPSHOT = "enable_shared_storage_snapshot_in_query"


def joins_item_sets(table: CurrentTable, keys: int) -> bool:
    """Whether a refresh statement of `keys` objects of `table` is one to join item sets in."""
    return bool(table.items) and keys >= JOINED_ITEMS_FROM_KEYS


def _joined_snapshot_select(table: CurrentTable, db: str, where: str) -> str:
    """The snapshots of the objects `where` selects, as `_snapshot_select` computes them, with
    the item set taken from the newest version that carried one by sorting the versions (LIMIT 1
    BY) and joined to the other fields, rather than by an argMaxIf per item column: argMax keeps
    an array in a generic value per object and compares as it goes. For a bulk refresh only: the
    join holds the item sets in memory, which over a whole table (the full refresh) would not
    fit, where grouping in key order streams. The statement that runs it must share one
    snapshot between its reads (`SHARED_SNAPSHOT`): the items must come from the versions the
    other fields were computed from."""
    key, nested = table.key, table.nested
    fields = _snapshot_select(replace(table, items=()), db, "", source="versions")
    items = ", ".join(f"{nested}.{item}" for item in table.items)
    joined = ", ".join(f"s.`{nested}.{item}` AS `{nested}.{item}`" for item in table.items)
    return (
        f"WITH versions AS (SELECT * FROM {db}.{table.source} {where}) "
        f"SELECT f.*, {joined} FROM ({fields}) AS f LEFT JOIN ("
        f" SELECT merchant_id, {key}, {items} FROM versions WHERE has_{nested}"
        f" ORDER BY merchant_id, {key}, {table.newest} DESC LIMIT 1 BY merchant_id, {key}"
        f") AS s USING (merchant_id, {key})"
    )


def _field(field: str, clearable: bool, newest: str) -> str:
    """The newest non-null value (argMax skips NULLs). A clearable field counts a version that
    cleared it too: wrapped in a tuple, whose NULL element argMax does not skip."""
    if not clearable:
        return f"argMax({field}, {newest}) AS {field}"
    return (
        f"argMaxIf(tuple({field}), {newest}, {field} IS NOT NULL OR has(cleared, '{field}')).1 "
        f"AS {field}"
    )


def _insert_columns(table: CurrentTable) -> str:
    return ", ".join(f"`{column}`" for column in table.columns)


def _select_columns(table: CurrentTable) -> str:
    return ", ".join(
        "latest_version" if column == "version" else f"`{column}`" for column in table.columns
    )


def full_refresh(table: CurrentTable, db: str) -> str:
    """Every object's current state (a migration fills a new, empty table with this). The
    versions are sorted by (merchant_id, key, version), so grouping in that order streams: the
    memory it takes does not grow with the warehouse."""
    return (
        f"INSERT INTO {db}.{table.name} ({_insert_columns(table)}) "
        f"SELECT {_select_columns(table)} FROM ({_snapshot_select(table, db, '')}) "
        "SETTINGS optimize_aggregation_in_order = 1"
    )


def keys_filter(key: str, keys: Iterable[tuple[int, int]]) -> str:
    """Two single-column IN filters rather than one tuple IN: ClickHouse uses both against the
    sort key and evaluates them several times faster (4,000 keys: 22 ms vs 104 ms). It selects
    a superset when ids repeat across merchants (Salla's ids are global, so rarely), which is
    harmless: recomputing any object's snapshot from its stored versions is always correct.

    The object ids are one string literal, cast to an array in a subquery, not a literal list:
    ClickHouse parses a list element by element (16,000 ids: ~50 ms per statement before a row
    is read, in chDB), a string as one token. The subquery's set still prunes the sort key's
    granules (EXPLAIN indexes = 1; same for one id). Measured in docs/benchmarks.md."""
    merchants: set[int] = set()
    objects: set[int] = set()
    for merchant, object_id in keys:
        merchants.add(int(merchant))
        objects.add(int(object_id))
    ids = ",".join(map(str, sorted(objects)))
    return (
        f"merchant_id IN ({','.join(map(str, sorted(merchants)))}) "
        f"AND {key} IN (SELECT arrayJoin(CAST('[{ids}]', 'Array(UInt64)')))"
    )


# How much of a refresh statement its key lists may take. ClickHouse parses at most
# `max_query_size` of a statement (256 KiB by default, on a server and in chDB), and beyond it
# refuses the statement: more keys than this go into several statements. Big ones are cheaper per
# key (40,000 orders refreshed: 1.3-1.4 s in statements of 16,000 keys, 1.8-2.2 s in ones of
# 4,000), so the budget is most of the limit; the rest of the statement is about 7 KB.
KEY_LISTS_BUDGET = 192 * 1024


def keyed_refresh(
    table: CurrentTable, db: str, keys: Iterable[tuple[int, int]], *, shared_snapshot: bool = False
) -> list[str]:
    """The statements that bring the objects `keys` up to date, in order: per share of the keys
    that fits one statement, its snapshots, then its tombstone pass. `shared_snapshot`: the
    server has `SHARED_SNAPSHOT`, so big shares may join their item sets."""
    statements = []
    for share in _shares(keys, KEY_LISTS_BUDGET):
        where = keys_filter(table.key, share)
        snapshots, settings = _snapshot_select(table, db, f"WHERE {where}"), ""
        if shared_snapshot and joins_item_sets(table, len(share)):
            snapshots = _joined_snapshot_select(table, db, f"WHERE {where}")
            settings = f" SETTINGS {SHARED_SNAPSHOT} = 1"
        statements.append(
            f"INSERT INTO {db}.{table.name} ({_insert_columns(table)}) SELECT "
            f"{_select_columns(table)} FROM ({snapshots}){settings}"
        )
        if table.time_column is not None:
            statements.append(_tombstones(table, db, where))
    return statements


def _shares(keys: Iterable[tuple[int, int]], budget: int) -> list[list[tuple[int, int]]]:
    """`keys` in runs whose two lists in `keys_filter` take at most `budget` characters."""
    shares: list[list[tuple[int, int]]] = []
    merchants: set[int] = set()
    used = 0
    for merchant, object_id in keys:
        cost = len(str(int(object_id))) + 1  # and its comma
        merchant_cost = 0 if merchant in merchants else len(str(int(merchant))) + 1
        if not shares or used + cost + merchant_cost > budget:
            shares.append([])
            merchants, used = set(), 0
            merchant_cost = len(str(int(merchant))) + 1
        merchants.add(merchant)
        shares[-1].append((merchant, object_id))
        used += cost + merchant_cost
    return shares


def _tombstones(table: CurrentTable, db: str, where: str) -> str:
    """A partition still holding a live row of one of these objects, other than the partition
    of its newest snapshot, gets a tombstone (see the module docstring).

    Run after the snapshots are inserted, never in the same statement: this read must see every
    snapshot whose insert completed before it, so that the last loader to get here tombstones
    what any other left behind. One pass: per object and partition, the newest row and whether
    it is a snapshot (version > 0) or already a tombstone.
    """
    time, key = table.time_column, table.key
    lines_column = lines_value = lines_of_key = lines_in_year = ""
    if table.lines:  # the tombstone says how many line positions to hide (order lines below)
        lines_column, lines_value = "max_lines, ", "lines, "
        lines_of_key = "max(top_lines) AS lines,"
        lines_in_year = ", maxIf(max_lines, version > 0) AS top_lines"  # the snapshots' bound
    return (
        f"INSERT INTO {db}.{table.name} (merchant_id, {key}, versions, is_deleted, version, "
        f"{lines_column}{time}, updated_at) "
        f"SELECT merchant_id, {key}, newest_versions, 1, 0, {lines_value}stale.2, now64(3) FROM ("
        f" SELECT merchant_id, {key}, maxIf(top, live) AS newest_versions, {lines_of_key}"
        "  argMaxIf(year, top, live) AS newest_year,"
        "  groupArray((year, top_time, live)) AS partitions"
        " FROM ("
        f"  SELECT merchant_id, {key}, toYear({time}) AS year, max(versions) AS top,"
        f"   argMax({time}, versions) AS top_time, argMax(version, versions) > 0 AS live"
        f"{lines_in_year}"
        f"  FROM {db}.{table.name} WHERE {where}"
        f"  GROUP BY merchant_id, {key}, year"
        f" ) GROUP BY merchant_id, {key}"
        ") ARRAY JOIN partitions AS stale "
        "WHERE stale.3 AND NOT isNotDistinctFrom(stale.1, newest_year)"
    )


# -- order lines ---------------------------------------------------------------------------------
# `sales_facts` reads one row per order line from `order_lines_current` (migration 9) instead of
# ARRAY JOINing the items of each order row at query time: the top-products queries went from ~3x
# the physical floor to ~2x under concurrent writes (docs/benchmarks.md). A line is keyed by its
# position in the order's item set, so the table shows exactly what the set holds, duplicated
# ids included.
#
# A materialized view on `orders_current` writes the lines of every row inserted there, in the
# same insert and with the row's `versions`, so no statement is added to the refresh:
# - a snapshot: its lines, live (or deleted with the order), and a tombstone at every position
#   after its last line up to `max_lines`, the most lines any stored version of the order listed
#   (every position any snapshot of it can have written): lines an edit removed are hidden;
# - an order's tombstone in a partition it left (`_tombstones` above): a tombstone at every
#   position up to `max_lines` there.
# Why that is exact under any interleaving: a newer snapshot was computed from a superset of the
# versions, so its `max_lines` covers every position an older snapshot wrote, and it has more
# versions. In its own partition it writes a newer row at each of those positions (live line or
# tombstone); a partition it left gets an order tombstone, hence line tombstones, with its
# versions, from the pass that runs after every refresh (including the stale loader's own).


def order_lines_select(db: str, *, current: bool = False) -> str:
    """The lines (and line tombstones) of the rows inserted into `orders_current`, as the
    materialized view writes them; with `current`, of each order's current state (to fill the
    table once: live orders only, and no tombstones, the table being empty)."""
    if current:
        source = (
            f"{db}.orders_current FINAL ARRAY JOIN arrayEnumerate(items.item_id) AS line "
            "WHERE is_deleted = 0 SETTINGS do_not_merge_across_partitions_select_final = 1"
        )
    else:
        positions = "range(1, greatest(max_lines, length(items.item_id)) + 1)"
        source = f"{db}.orders_current ARRAY JOIN {positions} AS line"
    # Past the set's end, `items.x[line]` is the column type's default: a tombstone's values.
    return (
        "SELECT merchant_id, order_id, toUInt32(line) AS line, versions, "
        "if(line > length(items.item_id), 1, is_deleted) AS is_deleted, "
        + ", ".join(
            # A line without a currency of its own is in its order's.
            f"ifNull(items.{column}[line], currency) AS {column}"
            if column == "currency"
            else f"items.{column}[line] AS {column}"
            for column in ORDER_ITEMS
        )
        + ", status AS order_status, ifNull(is_draft, 0) AS is_draft, "
        f"created_at AS order_created_at FROM {source}"
    )
