"""The ClickHouse adapter against chDB through clickhouse-connect (the production client)."""

import random
import socket
from datetime import UTC, datetime

import pytest
from data_pipeline.adapters.clickhouse_schema import MIGRATIONS
from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse, QueryRejected
from data_pipeline.adapters.warehouse import LoadBatch
from data_pipeline.devtools.salla_samples import demo_store, encode
from data_pipeline.domain.envelope import parse_envelope
from data_pipeline.domain.events import transform
from data_pipeline.errors import TransientError
from data_pipeline.service_layer.archive import archive_record


def batch_of(events):
    batch = LoadBatch()
    for event in events:
        raw = encode(event)
        envelope = parse_envelope(raw)
        batch.entities.extend(transform(envelope).entities)
        batch.raw_events.append(archive_record(envelope, raw, datetime.now(UTC), "webhook"))
    return batch


def test_migrations_are_idempotent_and_versioned(warehouse):
    assert warehouse.migrate() == []
    assert warehouse.schema_version() == max(m.version for m in MIGRATIONS)
    tables = {
        row[0]
        for row in warehouse.query(
            "SELECT name FROM system.tables WHERE database = {db:String}",
            {"db": warehouse.database},
        ).rows
    }
    assert {
        "orders",
        "sales_facts",
        "products",
        "customers",
        "abandoned_carts",
        "raw_events",
    } <= tables


def test_any_delivery_order_with_duplicates_converges_to_the_truth(warehouse):
    store = demo_store()
    events = store.events + random.Random(3).sample(store.events, 30)
    random.Random(5).shuffle(events)
    for chunk in (events[i : i + 17] for i in range(0, len(events), 17)):
        warehouse.write(batch_of(chunk))
    truth = store.truth
    [(orders, order_sum)] = warehouse.query(
        f"SELECT count(), sum(total) FROM {warehouse.database}.orders"
    ).rows
    [(lines, line_sum)] = warehouse.query(
        f"SELECT count(), sum(line_total) FROM {warehouse.database}.sales_facts"
    ).rows
    assert (orders, order_sum) == (len(truth.live_orders()), truth.order_total_sum())
    assert (lines, line_sum) == (truth.line_count(), truth.line_total_sum())
    statuses = dict(
        warehouse.query(f"SELECT order_id, status FROM {warehouse.database}.orders").rows
    )
    assert statuses == {o.order_id: o.status for o in truth.live_orders()}


def test_items_removed_by_an_update_disappear(warehouse):
    store = demo_store()
    order = store.truth.orders[
        next(e for e in store.events if e["event"] == "order.products.updated")["data"]["id"]
    ]
    warehouse.write(batch_of(store.events))
    items = {
        row[0]
        for row in warehouse.query(
            f"SELECT item_id FROM {warehouse.database}.sales_facts"
            f" WHERE order_id = {order.order_id}"
        ).rows
    }
    assert items == {line.item_id for line in order.lines}


def test_an_update_arriving_before_its_creation_does_not_lose_the_update(warehouse):
    store = demo_store()
    order_events = [
        e
        for e in store.events
        if e["data"].get("id") == store.truth.live_orders()[0].order_id
        or e["data"].get("order", {}).get("id") == store.truth.live_orders()[0].order_id
    ]
    warehouse.write(batch_of(list(reversed(order_events))))
    [(status,)] = warehouse.query(f"SELECT status FROM {warehouse.database}.orders").rows
    assert status == store.truth.live_orders()[0].status


def test_deleted_orders_leave_orders_and_sales_facts(warehouse):
    store = demo_store()
    deleted = next(o for o in store.truth.orders.values() if o.deleted)
    warehouse.write(batch_of(store.events))
    for view in ("orders", "sales_facts"):
        rows = warehouse.query(
            f"SELECT count() FROM {warehouse.database}.{view} WHERE order_id = {deleted.order_id}"
        ).rows
        assert rows == [(0,)]
    [(archived,)] = warehouse.query(f"SELECT count() FROM {warehouse.database}.raw_events").rows
    assert archived == len(store.events)


def test_credentials_never_reach_the_raw_archive(warehouse):
    store = demo_store()
    warehouse.write(batch_of(store.events))
    [(body,)] = warehouse.query(
        f"SELECT body FROM {warehouse.database}.raw_events WHERE event = 'app.store.authorize'"
    ).rows
    assert "ory_at_demo" not in body and "ory_rt_demo" not in body and "[redacted]" in body


def test_read_queries_cannot_write(warehouse):
    with pytest.raises(QueryRejected, match=r"(?i)readonly"):
        warehouse.query(f"DROP TABLE {warehouse.database}.raw_events")
    with pytest.raises(QueryRejected):
        warehouse.query("SELEC nonsense")


def test_a_detached_table_is_a_transient_failure_and_recovers(warehouse, chdb_path):
    admin = ClickHouseWarehouse(f"chdb://{chdb_path}", warehouse.database)
    client = admin._connect()
    client.command(f"DETACH TABLE {warehouse.database}.raw_events")
    try:
        with pytest.raises(TransientError, match="raw_events"):
            warehouse.write(batch_of(demo_store().events[:20]))
    finally:
        client.command(f"ATTACH TABLE {warehouse.database}.raw_events")
    warehouse.write(batch_of(demo_store().events[:20]))


def test_an_unreachable_server_is_a_transient_failure():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the client connects
    remote = ClickHouseWarehouse(
        f"http://default:pw@127.0.0.1:{port}", "analytics", connect_timeout=1
    )
    with pytest.raises(TransientError, match="warehouse"):
        remote.write(batch_of(demo_store().events[:5]))
    with pytest.raises(TransientError) as failure:
        remote.ping()
    assert "pw" not in str(failure.value)  # the DSN's password never reaches an error message


def test_database_names_are_plain_identifiers():
    with pytest.raises(ValueError, match="identifier"):
        ClickHouseWarehouse("chdb://memory", "analytics; DROP DATABASE x")


def test_entity_tables_can_be_rebuilt_from_the_raw_archive(warehouse, chdb_path):
    from data_pipeline.service_layer.replay import replay_archive

    store = demo_store()
    warehouse.write(batch_of(store.events))
    db = warehouse.database

    def state():
        return (
            warehouse.query(f"SELECT count(), sum(total) FROM {db}.orders").rows,
            warehouse.query(f"SELECT count(), sum(line_total) FROM {db}.sales_facts").rows,
            warehouse.query(f"SELECT count(), sum(price) FROM {db}.products").rows,
        )

    before = state()
    assert replay_archive(warehouse, db).rows > 0
    assert state() == before  # replaying over intact tables changes nothing
    admin = ClickHouseWarehouse(f"chdb://{chdb_path}", db)._connect()
    for table in ("order_versions", "product_versions", "orders_current", "products_current"):
        admin.command(f"TRUNCATE TABLE {db}.{table}")
    assert state()[0] == [(0, None)]
    report = replay_archive(warehouse, db, page_size=50)
    assert state() == before
    assert report.events == len(store.events) and report.unmodeled == 1 and not report.invalid
