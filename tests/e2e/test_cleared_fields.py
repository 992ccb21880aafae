"""A field a payload sets to null (or empties) is cleared in the warehouse; a field it does not
carry keeps its value. argMax skips NULLs, so both used to look the same: a removed coupon kept
its code for good."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from data_pipeline.devtools.salla_samples import encode, js_date, php_date, sample_envelope

AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parents[1] / "fixtures" / "salla"


def at(event: dict, seconds: int) -> dict:
    changed = copy.deepcopy(event)
    moment = AT + timedelta(seconds=seconds)
    changed["created_at"] = js_date(moment)
    if "updated_at" in changed["data"]:  # the payload's own time wins over the envelope's
        changed["data"]["updated_at"] = php_date(moment)
    return changed


def order_events() -> tuple[dict, dict, dict]:
    created = at(sample_envelope("order.created"), 0)
    removed = at(created, 60)
    removed["event"] = "order.updated"
    removed["data"]["amounts"]["discounts"] = []  # the coupon was taken off
    removed["data"]["payment_method"] = None
    # A later event in the nested order.status.updated shape carries no amounts at all.
    status = at(created, 120)
    status["event"] = "order.status.updated"
    status["data"] = {
        "id": created["data"]["id"],
        "status": "قيد التنفيذ",
        "order": {"id": created["data"]["id"], "status": {"slug": "in_progress", "name": "x"}},
    }
    return created, removed, status


@pytest.mark.parametrize("order", [(0, 1, 2), (1, 2, 0), (2, 0, 1), (1, 0, 2)])
async def test_a_removed_coupon_is_gone_in_any_arrival_order(harness, order):
    events = order_events()
    for index in order:
        assert (await harness.send(encode(events[index]))).status_code == 200
    await harness.settle()
    db = harness.settings.clickhouse_database
    rows = await harness.sql(
        f"SELECT coupon_code, discount, payment_method, status, total FROM {db}.orders"
    )
    assert len(rows) == 1
    coupon, discount, method, status, total = rows[0]
    assert (coupon, discount, method, status) == (None, 0, None, "in_progress")
    assert total is not None  # not carried by the status event: kept


async def test_an_older_payload_with_the_coupon_cannot_bring_it_back(harness):
    created, removed, _ = order_events()
    assert (await harness.send(encode(removed))).status_code == 200
    await harness.settle()
    assert (await harness.send(encode(created))).status_code == 200  # late and older
    await harness.settle()
    db = harness.settings.clickhouse_database
    assert await harness.sql(f"SELECT coupon_code FROM {db}.orders") == [(None,)]
    [(lines,)] = await harness.sql(f"SELECT count() FROM {db}.sales_facts")
    assert lines == len(created["data"]["items"])  # the older items still fill the gap


async def test_unlimited_stock_and_a_removed_cost_clear_the_product_fields(harness):
    created = at(sample_envelope("product.created"), 0)
    updated = at(created, 30)
    updated["event"] = "product.updated"
    updated["data"]["quantity"] = None  # unlimited stock
    updated["data"]["unlimited_quantity"] = True
    updated["data"]["cost_price"] = None
    updated["data"]["categories"] = []
    partial = at(created, 60)  # product.price.updated carries price fields only
    partial["event"] = "product.price.updated"
    partial["data"] = {
        "id": created["data"]["id"],
        "updated_at": php_date(AT + timedelta(seconds=60)),
        "name": created["data"]["name"],
        "price": {"amount": 50, "currency": "SAR"},
        "sale_price": {"amount": 0, "currency": "SAR"},
    }
    for event in (partial, created, updated):
        assert (await harness.send(encode(event))).status_code == 200
    await harness.settle()
    db = harness.settings.clickhouse_database
    rows = await harness.sql(
        f"SELECT quantity, cost_price, category, sku, description IS NOT NULL, price "
        f"FROM {db}.products"
    )
    assert rows == [(None, None, None, created["data"]["sku"], 1, 50)]


async def test_a_coupon_taken_off_an_abandoned_cart_is_gone(harness):
    with_coupon = at(sample_envelope("abandoned.cart"), 0)
    with_coupon["data"]["coupon"] = {"id": 1, "code": "WELCOME"}
    with_coupon["data"]["updated_at"] = php_date(AT)
    taken_off = at(with_coupon, 30)
    taken_off["data"]["coupon"] = None
    taken_off["data"]["updated_at"] = php_date(AT + timedelta(seconds=30))
    for event in (taken_off, with_coupon):  # the older one arrives last
        assert (await harness.send(encode(event))).status_code == 200
    await harness.settle()
    db = harness.settings.clickhouse_database
    assert await harness.sql(f"SELECT coupon_code FROM {db}.abandoned_carts") == [(None,)]


def example(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())["envelope"]


async def send_in_order(harness, events: list[dict]) -> None:
    for event in events:
        assert (await harness.send(encode(event))).status_code == 200
        await harness.settle()


@pytest.mark.parametrize("newest_first", [False, True])
async def test_a_withdrawn_tracking_number_and_cod_are_gone(harness, newest_first):
    created = at(example("shipment.created"), 0)
    updated = at(created, 45)
    updated["event"] = "shipment.updated"
    updated["data"]["tracking_number"] = None  # the label was cancelled
    updated["data"]["shipping_number"] = None
    updated["data"]["cash_on_delivery"] = None  # paid online after all
    partial = at(created, 90)  # a status-only update: carries neither field
    partial["event"] = "shipment.updated"
    partial["data"] = {key: created["data"][key] for key in ("id", "order_id", "status")}
    events = [created, updated, partial]
    await send_in_order(harness, events[::-1] if newest_first else events)
    db = harness.settings.clickhouse_database
    rows = await harness.sql(
        f"SELECT tracking_number, cod_amount, courier_name FROM {db}.shipments"
    )
    assert rows == [(None, None, created["data"]["courier_name"])]


async def test_review_text_withheld_later_does_not_bring_the_older_text_back(harness):
    first = at(example("review.added"), 0)
    first["data"]["content"] = "Fast delivery, good packing"
    edited = at(first, 30)
    edited["data"]["content"] = "Call me on 0551234567 about the refund"  # a contact: withheld
    await send_in_order(harness, [edited, first])  # the older text arrives last
    db = harness.settings.clickhouse_database
    assert await harness.sql(f"SELECT content, content_withheld FROM {db}.product_reviews") == [
        (None, True)
    ]


async def test_a_discount_taken_off_a_corrected_invoice_is_gone(harness):
    issued = at(example("invoice.created"), 0)
    corrected = at(issued, 60)
    corrected["data"]["discount"] = None
    corrected["data"]["payment_method"] = None
    await send_in_order(harness, [corrected, issued])
    db = harness.settings.clickhouse_database
    rows = await harness.sql(f"SELECT discount, payment_method, total FROM {db}.invoices")
    assert len(rows) == 1 and rows[0][:2] == (None, None) and rows[0][2] is not None
