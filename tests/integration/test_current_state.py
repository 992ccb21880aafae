"""The read contract over the current-state tables (docs/warehouse.md), in real chDB.

Exact at any moment: with merges stopped, every load in its own part, the contract still shows
exactly the truth. A creation time learned late never duplicates an order; a stale snapshot
written late never wins; a populated warehouse migrated from the earlier layout answers the
same as before.
"""

import dataclasses
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import clickhouse_connect
import pytest
from data_pipeline.adapters import clickhouse_warehouse
from data_pipeline.adapters.clickhouse_schema import MIGRATIONS
from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse
from data_pipeline.adapters.warehouse import LoadBatch
from data_pipeline.devtools.salla_samples import demo_store
from data_pipeline.domain.model import OrderItem, OrderItemSet, OrderVersion

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
    for table in ("order_versions", "orders_current", "products_current", "customers_current"):
        client.command(f"SYSTEM STOP MERGES {warehouse.database}.{table}")
    store = demo_store(seed=11)
    events = store.events + random.Random(1).sample(store.events, 25)  # duplicates
    random.Random(2).shuffle(events)  # any arrival order
    for event in events:
        warehouse.write(batch_of([event]))
    assert parts(warehouse, chdb_path, "orders_current") > 50  # nothing was merged
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
    admin(chdb_path).command(f"SYSTEM STOP MERGES {db}.orders_current")

    def items(order_version, *ids):
        lines = tuple(
            OrderItem(
                item_id=i,
                product_id=i * 10,
                sku=f"S{i}",
                name=f"item {i}",
                quantity=Decimal(1),
                unit_price=Decimal(2),
                discount=Decimal(0),
                tax=Decimal(0),
                line_total=Decimal(2),
                currency="SAR",
            )
            for i in ids
        )
        return OrderItemSet(MERCHANT, 11, order_version, lines)

    created = datetime(2026, 1, 1, tzinfo=UTC)
    warehouse.write(
        LoadBatch(
            entities=[version_row(11, 10, status="new", created_at=created), items(10, 1, 2, 3)]
        )
    )
    warehouse.write(LoadBatch(entities=[version_row(11, 20, status="edited"), items(20, 2)]))
    warehouse.write(LoadBatch(entities=[version_row(11, 30, status="paid")]))  # no items: kept
    rows = warehouse.query(f"SELECT item_id, order_status FROM {db}.sales_facts").rows
    assert rows == [(2, "paid")]


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
