"""The merchant analytics model end to end: webhooks signed through the local stack (intake,
QStash, worker, ClickHouse), with duplicates and in any order, must converge to exactly what the
simulated store says (cart recovery, margins, variants, sign-up cohorts, COD, drafts, invoices,
shipments, reviews), and Salla's own published examples must land field by field."""

import asyncio
import json
from datetime import UTC
from decimal import Decimal
from pathlib import Path

from data_pipeline.devtools.salla_samples import delivery_schedule, demo_store, encode

FIXTURES = Path(__file__).parents[1] / "fixtures" / "salla"


def example(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())["envelope"]


def utc(moment):
    return moment.astimezone(UTC).replace(tzinfo=None, microsecond=0)  # Salla: whole seconds


async def test_the_store_converges_in_every_new_table(harness):
    store = demo_store()
    deliveries = delivery_schedule(store.events, duplicate_share=0.4, seed=5)
    responses = await asyncio.gather(*(harness.send(body) for body in deliveries))
    assert {r.status_code for r in responses} == {200}
    await harness.settle()
    db, truth, sql = harness.settings.clickhouse_database, store.truth, harness.sql

    carts = await sql(f"SELECT cart_id, status, recovered_order_id FROM {db}.abandoned_carts")
    assert {c: (s, o) for c, s, o in carts} == {
        c: (v["status"], v["recovered_order_id"]) for c, v in truth.carts.items()
    }
    cart_lines = await sql(f"SELECT cart_id, product_id, quantity FROM {db}.abandoned_cart_items")
    assert {(c, p): q for c, p, q in cart_lines} == {
        (c, p): q for c, v in truth.carts.items() for p, q in v["items"].items()
    }
    [(recovered, carts_total)] = await sql(
        f"SELECT countIf(status = 'purchased'), count() FROM {db}.abandoned_carts"
    )
    assert (recovered, carts_total) == (len(truth.recovered_carts()), len(truth.carts))

    products = await sql(f"SELECT product_id, cost_price, sale_price FROM {db}.products")
    live = {k: v for k, v in truth.products.items() if not v["deleted"]}
    assert {p: (c, s) for p, c, s in products} == {
        p: (v["cost_price"], v["sale_price"]) for p, v in live.items()
    }
    [(margin,)] = await sql(
        f"SELECT sum((f.unit_price - p.cost_price) * f.quantity) FROM {db}.sales_facts AS f "
        f"INNER JOIN {db}.products AS p ON f.merchant_id = p.merchant_id "
        "AND f.product_id = p.product_id"
    )
    assert margin == truth.gross_margin()
    variants = await sql(
        f"SELECT variant_key, sum(quantity) FROM {db}.sales_facts WHERE variant_key != '' "
        "GROUP BY variant_key"
    )
    assert {k: int(q) for k, q in variants} == truth.variant_units()
    [(options,)] = await sql(f"SELECT any(options) FROM {db}.sales_facts WHERE variant_key != ''")
    assert options == [{"name": "الحجم", "value": "كبير", "price": Decimal("5")}]

    customers = await sql(f"SELECT customer_id, city, created_at FROM {db}.customers")
    assert {c: (city, at) for c, city, at in customers} == {
        c: (v["city"], utc(v["created_at"])) for c, v in truth.customers.items()
    }

    [(orders, drafts, cod)] = await sql(
        f"SELECT count(), countIf(is_draft = 1), sum(cod_fee) FROM {db}.orders"
    )
    assert (orders, drafts) == (len(truth.live_orders()), 1)
    assert cod == sum(o.cod_fee for o in truth.live_orders())
    [(unreconciled,)] = await sql(
        f"SELECT countIf(sub_total + shipping_cost + tax + cod_fee - discount != total) "
        f"FROM {db}.orders"
    )
    assert unreconciled == 0
    assert await sql(f"SELECT count() FROM {db}.sales_facts") == [(truth.line_count(),)]

    invoices = await sql(f"SELECT invoice_id, order_id, total, tax FROM {db}.invoices")
    assert {i: (o, t, x) for i, o, t, x in invoices} == {
        i: (v["order_id"], v["total"], v["tax"]) for i, v in truth.invoices.items()
    }
    assert await sql(f"SELECT count() FROM {db}.invoice_lines") == [
        (sum(v["lines"] for v in truth.invoices.values()),)
    ]
    shipments = await sql(f"SELECT shipment_id, order_id, status, delivered_at FROM {db}.shipments")
    assert {s: (o, st, d) for s, o, st, d in shipments} == {
        s: (v["order_id"], v["status"], v["delivered_at"] and utc(v["delivered_at"]))
        for s, v in truth.shipments.items()
    }
    reviews = await sql(f"SELECT order_id, product_id, rating, content FROM {db}.product_reviews")
    assert sorted(reviews) == sorted(
        (r["order_id"], r["product_id"], r["rating"], r["content"]) for r in truth.reviews
    )
    metrics = harness.container.metrics
    assert metrics.settled_total() == metrics.accepted_total() == len(deliveries)


async def test_salla_examples_land_field_by_field(harness):
    names = [
        "order.created",
        "product.created",
        "product.price.updated",
        "customer.created",
        "abandoned.cart",
        "abandoned.cart.purchased",
        "invoice.created",
        "shipment.created",
        "review.added",
    ]
    for name in reversed(names):  # the purchase before the cart, the price update first
        assert (await harness.send(encode(example(name)))).status_code == 200
    await harness.settle()
    db, sql = harness.settings.clickhouse_database, harness.sql
    assert await sql(
        f"SELECT status, recovered_order_id, checkout_url, total FROM {db}.abandoned_carts"
    ) == [("purchased", 2116150001, "https://salla.sa/store/checkout/1097962121", Decimal(100))]
    # The newer price update wins; its sale expired before it was sent: no sale.
    assert await sql(f"SELECT price, cost_price, sale_price FROM {db}.products") == [
        (Decimal(110), Decimal(60), None)
    ]
    assert await sql(f"SELECT cod_fee, coupon_code, is_draft, total FROM {db}.orders") == [
        (Decimal(0), "new offer", 0, Decimal(196))
    ]
    [(variant, options)] = await sql(f"SELECT variant_key, options FROM {db}.sales_facts")
    assert variant == "SIZE=BIG|الاضافات=بصل|الاضافات=فلفل"
    assert options[0] == {"name": "SIZE", "value": "BIG", "price": Decimal(120)}
    assert await sql(f"SELECT number, tax_percent, tax, total FROM {db}.invoices") == [
        ("1", Decimal(15), Decimal("88.2"), Decimal("676.2"))
    ]
    assert await sql(f"SELECT courier_name, status, cod_amount FROM {db}.shipments") == [
        ("Shipping App", "delivered", Decimal("10.7"))
    ]
    assert await sql(f"SELECT rating, content FROM {db}.product_reviews") == [(4, "Tamam")]


async def test_a_minimal_order_is_archived_and_loads_what_it_carries(harness):
    body = encode(example("order.created.minimal"))
    assert (await harness.send(body)).status_code == 200
    await harness.settle()
    db = harness.settings.clickhouse_database
    assert await harness.sql(f"SELECT order_id, reference_id, total FROM {db}.orders") == [
        (999, 50123, None)
    ]
    assert await harness.sql(f"SELECT event FROM {db}.raw_events") == [("order.created",)]


async def test_an_event_the_transform_rejects_is_archived_before_it_is_dead_lettered(harness):
    document = example("order.created")
    document["data"]["items"][0]["quantity"] = "many"  # can never load
    body = encode(document)
    assert (await harness.send(body)).status_code == 200
    await harness.settle()
    db = harness.settings.clickhouse_database
    assert harness.metric("pipeline_events_settled_total", outcome="dead_lettered") == 1
    assert await harness.sql(f"SELECT event, length(body) FROM {db}.raw_events") == [
        ("order.created", len(body))
    ]
    assert await harness.sql(f"SELECT count() FROM {db}.orders") == [(0,)]
