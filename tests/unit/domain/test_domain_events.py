"""Deriving domain events from versions: one per effective change, nothing for stale versions."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import jsonschema
import pytest
from data_pipeline.domain.domain_events import Tracked, derive
from data_pipeline.domain.model import (
    AbandonedCartVersion,
    CustomerVersion,
    OrderVersion,
    ProductVersion,
)
from data_pipeline.service_layer.domain_events import cloud_event, event_id

from shared.domain_events import schema

AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def run(*versions):
    """The events of each version in turn, through the stored state (as JSON, as stored)."""
    state, out = None, []
    for version in versions:
        new, events = derive(state, version)
        if new is not None:
            state = Tracked.from_json(new.to_json())
        out.append([e.name for e in events])
        for event in events:
            document = json.loads(cloud_event(event, "production"))
            jsonschema.validate(document, schema(event.name))
    return out


def order(version, **fields):
    return OrderVersion(merchant_id=1, order_id=7, version=version, event_time=AT, **fields)


def test_an_order_is_created_then_changes_status_then_amounts_then_is_deleted():
    assert run(
        order(1, status="payment_pending", total=Decimal("100.00"), currency="SAR"),
        order(2, status="payment_pending", total=Decimal("100.0")),  # same amount: no change
        order(3, status="completed"),
        order(4, total=Decimal("90"), coupon_code="WELCOME"),
        order(5, status="shipped", discount=Decimal("10")),
        order(6, is_deleted=True),
        order(7, is_deleted=True),
    ) == [
        ["order.created"],
        [],
        ["order.status_changed"],
        ["order.updated"],
        ["order.status_changed", "order.updated"],
        ["order.deleted"],
        [],
    ]


def test_a_stale_or_repeated_version_changes_nothing():
    state, _ = derive(None, order(5, status="completed"))
    assert derive(state, order(5, status="completed")) == (None, [])
    assert derive(state, order(3, status="payment_pending")) == (None, [])


def test_a_cleared_field_is_a_change_an_absent_one_is_not():
    first, _ = derive(None, order(1, coupon_code="WELCOME"))
    assert derive(first, order(2))[1] == []  # a status-only payload: the coupon stays
    _, events = derive(first, order(3, cleared=("coupon_code",)))
    assert [e.data for e in events] == [
        {"changed": {"couponCode": {"before": "WELCOME", "after": None}}}
    ]


def product(version, **fields):
    return ProductVersion(merchant_id=1, product_id=9, version=version, event_time=AT, **fields)


def test_product_price_changes_and_stock_running_out():
    assert run(
        product(1, price=Decimal("50"), currency="SAR", quantity=3),
        product(2, price=Decimal("50.00"), quantity=1),
        product(3, price=Decimal("45")),
        product(4, quantity=0),
        product(5, quantity=0, price=Decimal("45")),
        product(6, quantity=5),
        product(7, quantity=0),
    ) == [
        [],
        [],
        ["product.price_changed"],
        ["product.out_of_stock"],
        [],
        [],
        ["product.out_of_stock"],
    ]


def cart(version, **fields):
    return AbandonedCartVersion(merchant_id=1, cart_id=3, version=version, event_time=AT, **fields)


def test_a_cart_is_abandoned_updated_then_recovered_once():
    assert run(
        cart(1, total=Decimal("80"), status="active"),
        cart(2, total=Decimal("95"), item_count=Decimal("2")),
        cart(3, status="purchased", recovered_order_id=77),
        cart(4, total=Decimal("10")),  # a late update of a purchased cart
    ) == [["cart.abandoned"], ["cart.updated"], ["cart.recovered"], []]


def test_customers_carry_ids_only():
    customer = CustomerVersion(
        merchant_id=1, customer_id=4, version=1, event_time=AT, city="Riyadh", country="SA"
    )
    [(event)] = derive(None, customer)[1]
    assert event.name == "customer.created" and event.data == {}
    document = cloud_event(event, "production").decode()
    assert "Riyadh" not in document and '"customerId":4' in document


@pytest.mark.parametrize("version", [1, 2])
def test_ids_are_stable_per_event_entity_and_version(version):
    a = derive(None, order(version, status="completed"))[1][0]
    b = derive(None, order(version, status="completed"))[1][0]
    assert event_id(a) == event_id(b)
    assert event_id(a) != event_id(derive(None, order(version + 10, status="x"))[1][0])
