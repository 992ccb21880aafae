"""The read contract over the current-state tables (docs/warehouse.md), in real chDB.

Exact at any moment: with merges stopped, every load in its own part, the contract still shows
exactly the truth. A creation time learned late never duplicates an order; a stale snapshot
written late never wins; a populated warehouse migrated from the earlier layout answers the
same as before.
"""

import dataclasses
import itertools
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import clickhouse_connect
import pytest
from data_pipeline.adapters import clickhouse_warehouse
from data_pipeline.adapters.clickhouse_current import (
    CURRENT_TABLES,
    ORDERS,
    _joined_snapshot_select,
    _snapshot_select,
    keyed_refresh,
    keys_filter,
)
from data_pipeline.adapters.clickhouse_schema import MIGRATIONS, READ_CONTRACT
from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse
from data_pipeline.adapters.warehouse import LoadBatch
from data_pipeline.devtools.salla_samples import demo_store
from data_pipeline.domain.model import OrderItem, OrderItemSet, OrderVersion
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_clickhouse_warehouse import batch_of

MERCHANT = 1305146709
CONTRACT = (
    "SELECT count(), sum(total), groupArraySorted(100)(status) FROM {db}.orders",
    "SELECT count(), sum(line_total), sum(quantity) FROM {db}.sales_facts",
    "SELECT count(), sum(price), groupArraySorted(100)(name) FROM {db}.products",
    "SELECT count(), groupArraySorted(100)(city) FROM {db}.customers",
    "SELECT count(), sum(total) FROM {db}.abandoned_carts",
)


def contract(warehouse):
    return [warehouse.query(sql.format(db=warehouse.database)).rows for sql in CONTRACT]


def admin(chdb_path):
    return clickhouse_connect.get_client(dsn=f"chdb://{chdb_path}")


def parts(warehouse, chdb_path, table):
    client = admin(chdb_path)
    return client.query(
        "SELECT count() FROM system.parts WHERE database = {db:String} AND table = {t:String}"
        " AND active",
        parameters={"db": warehouse.database, "t": table},
    ).result_rows[0][0]


def test_the_contract_is_exact_with_every_load_in_its_own_unmerged_part(warehouse, chdb_path):
    client = admin(chdb_path)
    for table in (
        "order_versions",
        "orders_current",
        "order_lines_current",
        "products_current",
        "customers_current",
    ):
        client.command(f"SYSTEM STOP MERGES {warehouse.database}.{table}")
    store = demo_store(seed=11)
    events = store.events + random.Random(1).sample(store.events, 25)  # duplicates
    random.Random(2).shuffle(events)  # any arrival order
    for event in events:
        warehouse.write(batch_of([event]))
    assert parts(warehouse, chdb_path, "orders_current") > 50  # nothing was merged
    assert parts(warehouse, chdb_path, "order_lines_current") > 50
    truth = store.truth
    [(count, total, _)] = warehouse.query(
        f"SELECT count(), sum(total), 0 FROM {warehouse.database}.orders"
    ).rows
    assert (count, total) == (len(truth.live_orders()), truth.order_total_sum())
    [(lines, line_total, _)] = warehouse.query(
        f"SELECT count(), sum(line_total), 0 FROM {warehouse.database}.sales_facts"
    ).rows
    assert (lines, line_total) == (truth.line_count(), truth.line_total_sum())
    statuses = warehouse.query(
        f"SELECT order_id, status FROM {warehouse.database}.orders ORDER BY order_id"
    ).rows
    assert statuses == sorted((o.order_id, o.status) for o in truth.live_orders())
    # The reading session inlines the views (the app reader's settings, clickhouse_access): every
    # view of the contract answers the same planned either way, with all those parts unmerged.
    assert warehouse.query("SELECT getSetting('analyzer_inline_views')").rows == [(True,)]
    for view in READ_CONTRACT:
        sql = f"SELECT * FROM {warehouse.database}.{view} ORDER BY ALL SETTINGS "
        inlined = warehouse.query(sql + "analyzer_inline_views = 1").rows
        assert inlined == warehouse.query(sql + "analyzer_inline_views = 0").rows, view
    assert len(warehouse.query(f"SELECT * FROM {warehouse.database}.sales_facts").rows) == lines


def version_row(order_id, version, **fields):
    return OrderVersion(
        merchant_id=MERCHANT,
        order_id=order_id,
        version=version,
        event_time=datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=version),
        **fields,
    )


def test_a_creation_time_learned_late_moves_the_order_without_a_duplicate(warehouse, chdb_path):
    admin(chdb_path).command(f"SYSTEM STOP MERGES {warehouse.database}.orders_current")
    db = warehouse.database
    # A status update arrives first: the creation time is not known yet.
    warehouse.write(LoadBatch(entities=[version_row(7, 20, status="shipped")]))
    assert warehouse.query(f"SELECT order_id, created_at FROM {db}.orders").rows == [(7, None)]
    # The creation arrives (older, with the time): one order, in its year, the newer status.
    created = datetime(2025, 3, 4, 10, tzinfo=UTC)
    warehouse.write(
        LoadBatch(
            entities=[
                version_row(7, 10, status="under_review", created_at=created, total=Decimal(5))
            ]
        )
    )
    rows = warehouse.query(f"SELECT order_id, status, total, created_at FROM {db}.orders").rows
    assert rows == [(7, "shipped", Decimal(5), created.replace(tzinfo=None))]
    # The object left the "unknown" partition: a tombstone there hides what it left behind.
    stored = warehouse.query(
        f"SELECT count(), countIf(version = 0) FROM {db}.orders_current WHERE created_at IS NULL"
    ).rows
    assert stored == [(2, 1)]
    # Loading it again changes nothing, and never brings the old row back.
    warehouse.write(LoadBatch(entities=[version_row(7, 20, status="shipped")]))
    assert len(warehouse.query(f"SELECT * FROM {db}.orders").rows) == 1


def test_a_stale_snapshot_written_late_never_wins(warehouse, chdb_path):
    db = warehouse.database
    admin(chdb_path).command(f"SYSTEM STOP MERGES {db}.orders_current")
    first = version_row(9, 10, status="under_review", city="Riyadh")
    newest = version_row(9, 30, status="delivered")
    warehouse.write(LoadBatch(entities=[first, newest]))
    stale = warehouse.query(f"SELECT * FROM {db}.orders_current WHERE order_id = 9").rows
    # A concurrent loader's older version lands; the snapshot that sees it has more versions.
    warehouse.write(LoadBatch(entities=[version_row(9, 20, city="Jeddah")]))
    # The earlier snapshot (two versions) is inserted again late, as a slow loader would.
    columns = warehouse.query(f"SELECT * FROM {db}.orders_current LIMIT 0").columns
    client = admin(chdb_path)
    client.insert(f"{db}.orders_current", stale, column_names=list(columns))
    [(status, city)] = warehouse.query(f"SELECT status, city FROM {db}.orders").rows
    assert (status, city) == ("delivered", "Jeddah")  # v30's status, v20's city (newest non-null)


def test_items_removed_by_a_newer_version_vanish_with_unmerged_parts(warehouse, chdb_path):
    db = warehouse.database
    stop_merges(chdb_path, db)

    created = datetime(2026, 1, 1, tzinfo=UTC)
    warehouse.write(
        LoadBatch(
            entities=[
                version_row(11, 10, status="new", created_at=created),
                order_items(11, 10, 1, 2, 3),
            ]
        )
    )
    warehouse.write(
        LoadBatch(entities=[version_row(11, 20, status="edited"), order_items(11, 20, 2)])
    )
    warehouse.write(LoadBatch(entities=[version_row(11, 30, status="paid")]))  # no items: kept
    rows = warehouse.query(f"SELECT item_id, order_status FROM {db}.sales_facts").rows
    assert rows == [(2, "paid")]
    # Each removed line is hidden by a tombstone of its own, not by a merge.
    [(stored, tombstones)] = warehouse.query(
        f"SELECT count(), countIf(is_deleted = 1) FROM {db}.order_lines_current"
    ).rows
    assert parts(warehouse, chdb_path, "order_lines_current") > 1 and tombstones >= 2, stored


def stop_merges(chdb_path, db):
    for table in ("orders_current", "order_lines_current"):
        admin(chdb_path).command(f"SYSTEM STOP MERGES {db}.{table}")


def order_items(order_id, order_version, *ids):
    lines = tuple(
        OrderItem(
            item_id=i,
            product_id=i * 10,
            sku=f"S{i}",
            name=f"item {i}",
            quantity=Decimal(1),
            unit_price=Decimal(i),
            discount=Decimal(0),
            tax=Decimal(0),
            line_total=Decimal(i),
            currency="SAR",
        )
        for i in ids
    )
    return OrderItemSet(MERCHANT, order_id, order_version, lines)


def lines_of(warehouse, order_id):
    return warehouse.query(
        "SELECT item_id, line_total, order_status, order_created_at FROM {db}.sales_facts"
        " WHERE order_id = {o:UInt64} ORDER BY item_id".replace("{db}", warehouse.database),
        {"o": order_id},
    ).rows


def test_lines_follow_their_order_into_the_year_learned_late(warehouse, chdb_path):
    db = warehouse.database
    stop_merges(chdb_path, db)
    # An update carrying the items arrives before the creation: the year is not known yet.
    warehouse.write(
        LoadBatch(entities=[version_row(21, 20, status="edited"), order_items(21, 20, 1, 2)])
    )
    assert lines_of(warehouse, 21) == [(1, 1, "edited", None), (2, 2, "edited", None)]
    created = datetime(2025, 3, 4, 10, tzinfo=UTC)
    warehouse.write(
        LoadBatch(
            entities=[
                version_row(21, 10, status="new", created_at=created),
                order_items(21, 10, 1, 2, 3),  # older: the set of version 20 stays
            ]
        )
    )
    at = created.replace(tzinfo=None)
    assert lines_of(warehouse, 21) == [(1, 1, "edited", at), (2, 2, "edited", at)]
    # The lines left behind in the "unknown" partition are tombstoned, not merged away: as
    # many positions as the order's largest item set had (3).
    [(left, hidden)] = warehouse.query(
        f"SELECT count(), countIf(is_deleted = 1) FROM {db}.order_lines_current"
        " WHERE order_created_at IS NULL"
    ).rows
    assert (left, hidden) == (5, 3)


def test_a_deleted_order_takes_its_lines_and_a_stale_snapshot_brings_none_back(
    warehouse, chdb_path
):
    db = warehouse.database
    stop_merges(chdb_path, db)
    created = datetime(2026, 2, 1, tzinfo=UTC)
    warehouse.write(
        LoadBatch(
            entities=[
                version_row(31, 10, status="new", created_at=created),
                order_items(31, 10, 1, 2, 3),
                version_row(32, 10, status="new", created_at=created),
                order_items(32, 10, 4, 5),
            ]
        )
    )
    stale = warehouse.query(f"SELECT * FROM {db}.orders_current WHERE order_id = 31").rows
    # An edit drops two lines of order 31; order 32 is deleted.
    warehouse.write(LoadBatch(entities=[version_row(31, 20), order_items(31, 20, 2)]))
    warehouse.write(LoadBatch(entities=[version_row(32, 30, is_deleted=True)]))
    assert lines_of(warehouse, 31) == [(2, 2, "new", created.replace(tzinfo=None))]
    assert lines_of(warehouse, 32) == []
    # A slow loader inserts the first snapshot of order 31 late: its three lines are written
    # again by the view, with fewer versions than the tombstones and the newer line.
    columns = warehouse.query(f"SELECT * FROM {db}.orders_current LIMIT 0").columns
    admin(chdb_path).insert(f"{db}.orders_current", stale, column_names=list(columns))
    assert lines_of(warehouse, 31) == [(2, 2, "new", created.replace(tzinfo=None))]
    [(total,)] = warehouse.query(f"SELECT sum(line_total) FROM {db}.sales_facts").rows
    assert total == 2


def test_duplicated_item_ids_in_one_order_are_both_lines(warehouse):
    created = datetime(2026, 2, 1, tzinfo=UTC)
    warehouse.write(
        LoadBatch(
            entities=[
                version_row(41, 10, status="new", created_at=created),
                order_items(41, 10, 7, 7),
            ]
        )
    )
    assert [row[:2] for row in lines_of(warehouse, 41)] == [(7, 7), (7, 7)]


def test_the_same_event_twice_in_one_batch_keeps_its_items(warehouse):
    """A redelivery in the same group commit (or a duplicated import line): two identical
    version keys, of which storage keeps one; it must be the one with the items."""
    from tests.integration.test_clickhouse_warehouse import batch_of

    store = demo_store(seed=41, orders=4)
    created = [e for e in store.events if e["event"] == "order.created"]
    warehouse.write(batch_of([*created, *created]))
    [(lines,)] = warehouse.query(f"SELECT count() FROM {warehouse.database}.sales_facts").rows
    assert lines == sum(len(e["data"]["items"]) for e in created if not e["data"]["draft"]) > 0


EARLIER_TABLES = {
    "OrderVersion": "order_versions",
    "ProductVersion": "product_versions",
    "CustomerVersion": "customer_versions",
    "AbandonedCartVersion": "abandoned_cart_versions",
    "RawEvent": "raw_events",
}


def populate_earlier_layout(warehouse, chdb_path, events):
    """Write entities as the loader of schema version 3 did: order versions without items,
    item sets in their own table, only the columns that schema had (entities it did not model,
    such as invoices, were not loaded then; their raw events were archived)."""
    client = admin(chdb_path)
    db = warehouse.database
    batch = batch_of(events)
    known = {
        table: {
            name
            for (name,) in client.query(
                f"SELECT name FROM system.columns WHERE database = '{db}' AND table = '{table}'"
            ).result_rows
        }
        for table in [*EARLIER_TABLES.values(), "order_item_sets"]
    }
    for record in [*batch.raw_events, *batch.entities]:
        name = type(record).__name__
        if name == "OrderItemSet":
            fields = [f.name for f in dataclasses.fields(OrderItem)]
            fields = [f for f in fields if f"items.{f}" in known["order_item_sets"]]
            columns = ["merchant_id", "order_id", "version", *(f"items.{f}" for f in fields)]
            arrays = [[getattr(item, f) for item in record.items] for f in fields]
            row = (record.merchant_id, record.order_id, record.version, *arrays)
            client.insert(f"{db}.order_item_sets", [row], column_names=columns)
        elif name in EARLIER_TABLES:
            table = EARLIER_TABLES[name]
            columns = [f.name for f in dataclasses.fields(record) if f.name in known[table]]
            row = tuple(getattr(record, column) for column in columns)
            client.insert(f"{db}.{table}", [row], column_names=columns)


def test_a_populated_warehouse_migrates_with_the_same_answers(chdb_path, monkeypatch):
    import uuid

    database = "mig_" + uuid.uuid4().hex[:10]
    monkeypatch.setattr(clickhouse_warehouse, "MIGRATIONS", MIGRATIONS[:3])
    warehouse = ClickHouseWarehouse(f"chdb://{chdb_path}", database)
    warehouse.migrate()
    store = demo_store(seed=21, orders=60)
    events = store.events + random.Random(4).sample(store.events, 20)
    random.Random(6).shuffle(events)
    for chunk in (events[i : i + 9] for i in range(0, len(events), 9)):
        populate_earlier_layout(warehouse, chdb_path, chunk)
    before = contract(warehouse)
    stored = warehouse.query(f"SELECT count() FROM {database}.order_versions").rows
    monkeypatch.setattr(clickhouse_warehouse, "MIGRATIONS", MIGRATIONS)
    assert [name.split(" ", 1)[0] for name in warehouse.migrate()] == [
        "0004",
        "0005",
        "0006",
        "0007",
        "0008",
        "0009",
    ]
    assert contract(warehouse) == before
    # Migration 8 keys every versions table by the body too, without rewriting it.
    keys = warehouse.query(
        "SELECT name, sorting_key FROM system.tables"
        " WHERE database = {db:String} AND name LIKE '%\\_versions'",
        {"db": database},
    ).rows
    assert len(keys) == 7 and all(key.endswith("version, body_key") for _, key in keys), keys
    assert before[0][0][0] == len(store.truth.live_orders())
    # Every stored row is kept (the item sets too); the versions gained their items.
    assert (
        warehouse.query(f"SELECT count() FROM {database}.order_versions WHERE has_items = 0").rows
        == stored
    )
    assert warehouse.query(f"SELECT count() FROM {database}.order_item_sets").rows[0][0] > 0
    # New loads after the migration keep converging with what was migrated, and bring what the
    # earlier schema did not keep: a draft's lines stop counting as sales.
    warehouse.write(batch_of(store.events))
    after = contract(warehouse)
    assert after[0] == before[0] and after[2:] == before[2:]
    assert after[1][0][0] == store.truth.line_count() < before[1][0][0]
    [(drafts,)] = warehouse.query(f"SELECT countIf(is_draft = 1) FROM {database}.orders").rows
    assert drafts == 1


@pytest.mark.parametrize("table", ["orders_current", "abandoned_carts_current"])
def test_time_ranged_tables_are_partitioned_by_creation_year(warehouse, table):
    [(key,)] = warehouse.query(
        "SELECT partition_key FROM system.tables"
        " WHERE database = {db:String} AND name = {t:String}",
        {"db": warehouse.database, "t": table},
    ).rows
    assert key == "toYear(created_at)"


SALES_ROWS = "SELECT * FROM {db}.sales_facts ORDER BY order_id, item_id, line_total, sku"


def test_migration_9_moves_sales_facts_onto_line_rows_with_every_row_the_same(
    chdb_path, monkeypatch
):
    """A warehouse at schema 8, written by that version's loader (items read from the order
    rows; nothing merged; duplicates, deletions and edits in any order), migrates to line rows:
    `sales_facts` returns the same rows, and later loads keep converging."""
    import uuid

    database = "lines_" + uuid.uuid4().hex[:10]
    monkeypatch.setattr(clickhouse_warehouse, "MIGRATIONS", MIGRATIONS[:8])
    earlier_loader = {
        name: dataclasses.replace(table, lines=None)
        for name, table in clickhouse_warehouse.CURRENT_TABLES.items()
    }
    monkeypatch.setattr(clickhouse_warehouse, "CURRENT_TABLES", earlier_loader)
    warehouse = ClickHouseWarehouse(f"chdb://{chdb_path}", database)
    warehouse.migrate()
    admin(chdb_path).command(f"SYSTEM STOP MERGES {database}.orders_current")
    store = demo_store(seed=23, orders=60)
    events = store.events + random.Random(5).sample(store.events, 20)
    random.Random(7).shuffle(events)
    half = len(events) // 2
    for chunk in (events[i : i + 7] for i in range(0, half, 7)):
        warehouse.write(batch_of(chunk))
    before = warehouse.query(SALES_ROWS.format(db=database)).rows
    assert before and parts(warehouse, chdb_path, "orders_current") > 5

    monkeypatch.undo()  # this version's loader and migrations
    assert [name.split(" ", 1)[0] for name in warehouse.migrate()] == ["0009"]
    assert warehouse.query(SALES_ROWS.format(db=database)).rows == before
    for chunk in (events[i : i + 7] for i in range(half, len(events), 7)):
        warehouse.write(batch_of(chunk))
    [(lines, line_total)] = warehouse.query(
        f"SELECT count(), sum(line_total) FROM {database}.sales_facts"
    ).rows
    assert (lines, line_total) == (store.truth.line_count(), store.truth.line_total_sum())
    warehouse.close()


_order_ids = itertools.count(770_000_001)
line_histories = st.lists(
    st.fixed_dictionaries(
        {
            "lines": st.one_of(st.none(), st.integers(0, 4)),  # None: the payload has no items
            "created": st.sampled_from([None, None, datetime(2025, 5, 1), datetime(2026, 2, 1)]),
            "deleted": st.sampled_from([False, False, False, False, True]),
        }
    ),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=line_histories,
    arrival=st.randoms(use_true_random=False),
    duplicates=st.integers(0, 2),
    batches=st.integers(1, 3),
    stale=st.lists(st.integers(0, 1000), max_size=2),  # which captured snapshots land late
)
def test_order_lines_converge_under_any_interleaving_and_stale_snapshots(
    warehouse, chdb_path, history, arrival, duplicates, batches, stale
):
    """Item sets growing and shrinking (to none), the creation year unknown, learned or
    changed, deletions, duplicates, batch boundaries and snapshots of slow loaders inserted
    late (each followed by its loader's tombstone pass): `sales_facts` shows exactly the lines
    of the newest version that carried items, in the newest known year, unless the newest
    version deleted the order."""
    db, order_id = warehouse.database, next(_order_ids)
    loads = []
    for index, state in enumerate(history):
        version = (index + 1) * 10
        if state["deleted"]:
            loads.append([version_row(order_id, version, is_deleted=True)])
            continue
        created = state["created"].replace(tzinfo=UTC) if state["created"] else None
        load = [version_row(order_id, version, status=f"s{index}", created_at=created)]
        if state["lines"] is not None:
            ids = [index * 10 + k for k in range(1, state["lines"] + 1)]
            load.append(order_items(order_id, version, *ids))
        loads.append(load)
    expected: list[tuple] = []
    if not history[-1]["deleted"]:
        carried = [i for i, s in enumerate(history) if s["lines"] is not None and not s["deleted"]]
        known = [s["created"] for s in history if s["created"] is not None and not s["deleted"]]
        if carried:
            newest = carried[-1]
            ids = [newest * 10 + k for k in range(1, history[newest]["lines"] + 1)]
            expected = [(i, Decimal(i), known[-1] if known else None) for i in ids]

    deliveries = loads + [arrival.choice(loads) for _ in range(duplicates)]
    arrival.shuffle(deliveries)
    size = -(-len(deliveries) // batches)
    captured = []
    for start in range(0, len(deliveries), size):
        batch = [entity for load in deliveries[start : start + size] for entity in load]
        warehouse.write(LoadBatch(entities=batch))
        captured += warehouse.query(
            f"SELECT * FROM {db}.orders_current WHERE order_id = {order_id} AND version > 0"
        ).rows
    columns = warehouse.query(f"SELECT * FROM {db}.orders_current LIMIT 0").columns
    client = admin(chdb_path)
    for row in [captured[pick % len(captured)] for pick in stale if captured]:
        client.insert(f"{db}.orders_current", [row], column_names=list(columns))
        _, *passes = keyed_refresh(ORDERS, db, [(MERCHANT, order_id)])  # after its snapshot
        for statement in passes:
            client.command(statement)

    rows = warehouse.query(
        f"SELECT item_id, line_total, order_created_at FROM {db}.sales_facts"
        f" WHERE order_id = {order_id} ORDER BY item_id"
    ).rows
    assert rows == expected


def test_writes_of_the_version_before_during_the_deploy_window(warehouse, chdb_path, monkeypatch):
    """Migration 9 ran; the functions still run the version before (it names no `max_lines`).
    An order it moves into its creation year shows its lines once; a line its edit removed
    goes with the order's next load by this version."""
    db = warehouse.database
    stop_merges(chdb_path, db)
    earlier_loader = {
        name: dataclasses.replace(table, lines=None)
        for name, table in clickhouse_warehouse.CURRENT_TABLES.items()
    }
    monkeypatch.setattr(clickhouse_warehouse, "CURRENT_TABLES", earlier_loader)
    warehouse.write(
        LoadBatch(entities=[version_row(51, 20, status="edited"), order_items(51, 20, 1, 2)])
    )
    created = datetime(2025, 3, 4, 10, tzinfo=UTC)
    warehouse.write(LoadBatch(entities=[version_row(51, 10, status="new", created_at=created)]))
    at = created.replace(tzinfo=None)
    assert lines_of(warehouse, 51) == [(1, 1, "edited", at), (2, 2, "edited", at)]

    warehouse.write(LoadBatch(entities=[version_row(51, 30), order_items(51, 30, 1)]))
    assert len(lines_of(warehouse, 51)) == 2  # the earlier version's limit, documented
    monkeypatch.undo()
    warehouse.write(LoadBatch(entities=[version_row(51, 40, status="paid")]))
    assert lines_of(warehouse, 51) == [(1, 1, "paid", at)]


def write_versions_with_item_sets(chdb_path, db, table, parts=3):
    """Versions written straight into `table`'s source, one part per round: 40 objects of
    several versions each, some sharing a version with another body, each carrying an item set
    of 0-4 items or none (a body's items follow from its version and body key, as the
    transform's do from the body)."""
    client = admin(chdb_path)
    first_item = f"{table.nested}.{table.items[0]}"
    for part in range(parts):
        client.command(
            f"INSERT INTO {db}.{table.source} (merchant_id, {table.key}, version, body_key, "
            f"event_time, has_{table.nested}, `{first_item}`) "
            "SELECT 7, object, version, body, now64(3), body_hash % 4 != 0, "
            "if(body_hash % 4 != 0, arrayMap(i -> body_hash % 100000 * 10 + i, "
            "range(body_hash % 5)), []) FROM ("
            " SELECT 1 + number % 40 AS object, 1 + intDiv(number, 40) % 3 AS version,"
            f" cityHash64(number, {part}) % 3 AS body,"
            " cityHash64(object, version, body) AS body_hash FROM numbers(160))"
        )


@pytest.mark.parametrize("table", [t for t in CURRENT_TABLES if t.items], ids=lambda t: t.name)
def test_a_bulk_refresh_computes_the_snapshots_the_full_refresh_does(warehouse, chdb_path, table):
    # A bulk refresh joins each object's item set to its other fields (the newest version that
    # carried one, found by the aggregate); the full refresh (migrations) takes it by an
    # argMaxIf per item column. The same rows, object by object.
    db = warehouse.database
    write_versions_with_item_sets(chdb_path, db, table)
    keys = warehouse.query(f"SELECT DISTINCT merchant_id, {table.key} FROM {db}.{table.source}")
    where = "WHERE " + keys_filter(table.key, keys.rows)
    rows = "SELECT * FROM ({}) ORDER BY merchant_id, {}"
    keyed = warehouse.query(rows.format(_joined_snapshot_select(table, db, where), table.key))
    full = warehouse.query(rows.format(_snapshot_select(table, db, ""), table.key))
    assert len(keyed.rows) == 40
    assert keyed.rows == full.rows
