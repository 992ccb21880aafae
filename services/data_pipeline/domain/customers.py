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
from data_pipeline.domain.fields import obj, text, with_cleared
from data_pipeline.domain.model import AbandonedCartVersion, CartItem, CustomerVersion
from data_pipeline.domain.money import SCALE, parse_currency, parse_decimal

CUSTOMER_EVENTS: frozenset[str] = frozenset(
    {"customer.created", "customer.updated", "customer.login"}
)
# Salla's cart docs (docs.salla.dev/1726838m0) describe the three follow-ups besides
# abandoned.cart; a purchase ends the cart as recovered.
CART_EVENTS: frozenset[str] = frozenset(
    {
        "abandoned.cart",
        "abandoned.cart.updated",
        "abandoned.cart.status.changed",
        "abandoned.cart.purchased",
    }
)
CART_PURCHASED = "abandoned.cart.purchased"


def customer_updated_at(customer: dict[str, Any]) -> datetime | None:
    return parse_optional_datetime(customer.get("updated_at"), field="customer.updated_at")


def customer_version(
    customer: dict[str, Any],
    *,
    merchant_id: int,
    version: int,
    body_key: int = 0,
    event_time: datetime,
    signed_up: bool = False,
) -> CustomerVersion:
    """`signed_up`: this is customer.created, whose time is the sign-up time (later updates
    never move it: the warehouse keeps the earliest)."""
    version_ = CustomerVersion(
        merchant_id=merchant_id,
        customer_id=parse_id(customer.get("id"), field="customer.id"),
        version=version,
        body_key=body_key,
        event_time=event_time,
        city=text(customer.get("city"), field="customer.city", limit=120),
        country=text(customer.get("country"), field="customer.country", limit=120),
        country_code=text(customer.get("country_code"), field="customer.country_code", limit=8),
        currency=parse_currency(customer.get("currency"), field="customer.currency"),
        updated_at=customer_updated_at(customer),
        created_at=event_time if signed_up else None,
    )
    return with_cleared(version_, {"city": "city" in customer, "country": "country" in customer})


def cart_updated_at(cart: dict[str, Any]) -> datetime | None:
    return parse_optional_datetime(cart.get("updated_at"), field="cart.updated_at")


def cart_version(
    cart: dict[str, Any],
    *,
    merchant_id: int,
    version: int,
    body_key: int = 0,
    event_time: datetime,
    purchased: bool = False,
) -> AbandonedCartVersion:
    """`purchased`: abandoned.cart.purchased, which recovers the cart at its event time."""
    # Two documented shapes: money objects (current) and flat numbers with a `totla` typo (old).
    total = cart.get("total", cart.get("totla"))
    customer = obj(cart.get("customer"), field="cart.customer")
    coupon = obj(cart.get("coupon"), field="cart.coupon")
    version_ = AbandonedCartVersion(
        merchant_id=merchant_id,
        cart_id=parse_id(cart.get("id"), field="cart.id"),
        version=version,
        body_key=body_key,
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
        status="purchased" if purchased else _cart_status(cart.get("status")),
        checkout_url=_checkout_url(cart.get("checkout_url")),
        recovered_order_id=_recovered_order(cart) if purchased else None,
        recovered_at=event_time if purchased else None,
        items=_cart_items(cart.get("items")),
    )
    # `coupon: null` is a coupon taken off the cart.
    return with_cleared(
        version_, {"coupon_code": "coupon" in cart, "discount": "total_discount" in cart}
    )


def _cart_status(value: Any) -> str | None:
    if isinstance(value, dict):  # a status object, as orders have
        value = value.get("slug") or value.get("name")
    status = text(value, field="cart.status", limit=32)
    return status.lower() if status else None


def _checkout_url(value: Any) -> str | None:
    """The recovery link. It identifies the cart, not the customer: kept, but only as an
    http(s) URL; anything else in that field is dropped (not a link to hand to an app, and not
    a reason to lose the rest of the cart)."""
    url = text(value, field="cart.checkout_url", limit=1000)
    return url if url is not None and url.startswith(("https://", "http://")) else None


def _recovered_order(cart: dict[str, Any]) -> int | None:
    order = cart.get("order")
    if isinstance(order, dict):
        return parse_optional_id(order.get("id"), field="cart.order.id")
    return parse_optional_id(cart.get("order_id"), field="cart.order_id")


def _cart_items(raw: Any) -> tuple[CartItem, ...] | None:
    """The cart's lines: product, quantity and, where the payload prices them, unit price and
    line total. Only the current example shape ({id, product_id, quantity}) is unpriced."""
    if not isinstance(raw, list):
        return None
    items = []
    for index, item in enumerate(raw):
        entry = obj(item, field=f"cart.items[{index}]")
        product = obj(entry.get("product"), field=f"cart.items[{index}].product")
        quantity = parse_decimal(entry.get("quantity"), field=f"cart.items[{index}].quantity")
        amounts = obj(entry.get("amounts"), field=f"cart.items[{index}].amounts")
        unit_price = parse_decimal(
            entry.get("price", amounts.get("price_without_tax", product.get("price"))),
            field=f"cart.items[{index}].price",
        )
        line_total = parse_decimal(
            entry.get("total", amounts.get("total")), field=f"cart.items[{index}].total"
        )
        quantity = quantity if quantity is not None else Decimal(1)
        if line_total is None and unit_price is not None:
            line_total = (unit_price * quantity).quantize(SCALE)
        items.append(
            CartItem(
                product_id=parse_optional_id(
                    entry.get("product_id", product.get("id")),
                    field=f"cart.items[{index}].product_id",
                ),
                quantity=quantity,
                unit_price=unit_price,
                line_total=line_total,
            )
        )
    return tuple(items)


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
