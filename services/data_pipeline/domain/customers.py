"""Salla customers and abandoned carts. Only non-personal attributes are kept.

A customer's name, mobile, e-mail, avatar, gender and birthday never leave this module: the
warehouse gets the id, city, country and currency.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from data_pipeline.domain.dates import parse_optional_datetime
from data_pipeline.domain.envelope import parse_id, parse_optional_id
from data_pipeline.domain.fields import obj, text
from data_pipeline.domain.model import AbandonedCartVersion, CustomerVersion
from data_pipeline.domain.money import parse_currency, parse_decimal

CUSTOMER_EVENTS = frozenset({"customer.created", "customer.updated", "customer.login"})
CART_EVENTS = frozenset({"abandoned.cart"})


def customer_updated_at(customer: dict[str, Any]) -> datetime | None:
    return parse_optional_datetime(customer.get("updated_at"), field="customer.updated_at")


def customer_version(
    customer: dict[str, Any], *, merchant_id: int, version: int, event_time: datetime
) -> CustomerVersion:
    return CustomerVersion(
        merchant_id=merchant_id,
        customer_id=parse_id(customer.get("id"), field="customer.id"),
        version=version,
        event_time=event_time,
        city=text(customer.get("city"), field="customer.city", limit=120),
        country=text(customer.get("country"), field="customer.country", limit=120),
        country_code=text(customer.get("country_code"), field="customer.country_code", limit=8),
        currency=parse_currency(customer.get("currency"), field="customer.currency"),
        updated_at=customer_updated_at(customer),
    )


def cart_updated_at(cart: dict[str, Any]) -> datetime | None:
    return parse_optional_datetime(cart.get("updated_at"), field="cart.updated_at")


def cart_version(
    cart: dict[str, Any], *, merchant_id: int, version: int, event_time: datetime
) -> AbandonedCartVersion:
    # Two documented shapes: money objects (current) and flat numbers with a `totla` typo (old).
    total = cart.get("total", cart.get("totla"))
    customer = obj(cart.get("customer"), field="cart.customer")
    coupon = obj(cart.get("coupon"), field="cart.coupon")
    return AbandonedCartVersion(
        merchant_id=merchant_id,
        cart_id=parse_id(cart.get("id"), field="cart.id"),
        version=version,
        event_time=event_time,
        customer_id=parse_optional_id(customer.get("id"), field="cart.customer.id"),
        total=parse_decimal(total, field="cart.total"),
        subtotal=parse_decimal(cart.get("subtotal"), field="cart.subtotal"),
        discount=parse_decimal(cart.get("total_discount"), field="cart.total_discount"),
        currency=parse_currency(
            (total.get("currency") if isinstance(total, dict) else None) or cart.get("currency"),
            field="cart.currency",
        ),
        item_count=_item_count(cart),
        coupon_code=text(coupon.get("code"), field="cart.coupon.code", limit=64),
        created_at=parse_optional_datetime(cart.get("created_at"), field="cart.created_at"),
        updated_at=cart_updated_at(cart),
    )


def _item_count(cart: dict[str, Any]) -> Decimal | None:
    items = cart.get("items")
    if isinstance(items, list):
        total = Decimal(0)
        for index, item in enumerate(items):
            entry = obj(item, field=f"cart.items[{index}]")
            total += (
                parse_decimal(entry.get("quantity"), field=f"cart.items[{index}].quantity") or 0
            )
        return total
    return parse_decimal(cart.get("items_count"), field="cart.items_count")
