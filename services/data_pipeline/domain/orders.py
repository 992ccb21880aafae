"""Salla orders (webhook order model and Admin API order details) to order versions.

Reads the fields the Salla reference documents (§2.3): the 10 order events share one model, but
`order.status.updated` may nest the order under `data.order`, so both shapes are accepted.
Shipping and billing people (names, phones, e-mails, street addresses) are never read.

A payload loads what it carries: a minimal `order.created` (only `id` and `reference_id`, as
Salla's own App Functions starter kit writes its fixtures) is a version with those fields, and
the order's other fields come from the versions that carried them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from data_pipeline.domain.dates import parse_optional_datetime
from data_pipeline.domain.envelope import parse_id, parse_optional_id
from data_pipeline.domain.fields import obj, text, with_cleared
from data_pipeline.domain.model import OrderItem, OrderItemSet, OrderVersion
from data_pipeline.domain.money import ZERO, amount_or_zero, parse_currency, parse_decimal
from data_pipeline.errors import InvalidPayload

ORDER_EVENTS: frozenset[str] = frozenset(
    {
        "order.created",
        "order.updated",
        "order.status.updated",
        "order.cancelled",
        "order.refunded",
        "order.deleted",
        "order.products.updated",
        "order.payment.updated",
        "order.coupon.updated",
        "order.total.price.updated",
    }
)


def unwrap_order(data: dict[str, Any]) -> dict[str, Any]:
    nested = data.get("order")
    return nested if isinstance(nested, dict) else data


def order_id_of(order: dict[str, Any]) -> int:
    return parse_id(order.get("id"), field="order.id")


def order_version(
    order: dict[str, Any],
    *,
    merchant_id: int,
    version: int,
    event_time: datetime,
    body_key: int = 0,
) -> OrderVersion:
    order_id = order_id_of(order)
    amounts = obj(order.get("amounts"), field="order.amounts")
    total_raw = amounts.get("total", order.get("total"))
    status_slug, status_name = _status(order.get("status"))
    currency = parse_currency(order.get("currency"), field="order.currency") or _currency_of(
        total_raw
    )
    shipping = obj(order.get("shipping"), field="order.shipping")
    address = obj(shipping.get("address"), field="order.shipping.address")
    customer = obj(order.get("customer"), field="order.customer")
    version_ = OrderVersion(
        merchant_id=merchant_id,
        order_id=order_id,
        version=version,
        body_key=body_key,
        event_time=event_time,
        reference_id=parse_optional_id(order.get("reference_id"), field="order.reference_id"),
        status=status_slug,
        status_name=status_name,
        total=parse_decimal(total_raw, field="order.amounts.total"),
        sub_total=parse_decimal(amounts.get("sub_total"), field="order.amounts.sub_total"),
        shipping_cost=parse_decimal(
            amounts.get("shipping_cost"), field="order.amounts.shipping_cost"
        ),
        tax=parse_decimal(amounts.get("tax"), field="order.amounts.tax"),
        discount=_discount_total(amounts.get("discounts")),
        cod_fee=parse_decimal(
            amounts.get("cash_on_delivery"), field="order.amounts.cash_on_delivery"
        ),
        coupon_code=_coupon_codes(amounts.get("discounts")),
        is_draft=_flag(order.get("draft"), field="order.draft"),
        currency=currency,
        payment_method=text(order.get("payment_method"), field="order.payment_method", limit=64),
        customer_id=parse_optional_id(customer.get("id"), field="order.customer.id"),
        city=text(address.get("city") or customer.get("city"), field="order.city", limit=120),
        country=text(
            address.get("country") or customer.get("country"), field="order.country", limit=120
        ),
        source=text(order.get("source"), field="order.source", limit=64),
        created_at=parse_optional_datetime(order.get("date"), field="order.date"),
    )
    # Carried but empty: the coupon was removed, the fee dropped, the method unset.
    carried = {
        "coupon_code": "discounts" in amounts,
        "discount": "discounts" in amounts,
        "cod_fee": "cash_on_delivery" in amounts,
        "payment_method": "payment_method" in order,
    }
    return with_cleared(version_, carried)


def order_item_set(
    order: dict[str, Any], *, merchant_id: int, version: int, body_key: int = 0
) -> OrderItemSet | None:
    """The order's full item set, or None when the payload carries no (or only summary) items."""
    raw_items = order.get("items")
    if not isinstance(raw_items, list):
        return None
    if any(not isinstance(item, dict) or "id" not in item for item in raw_items):
        return None  # list-endpoint summaries ({name, quantity, thumbnail}) are not line items
    currency = parse_currency(order.get("currency"), field="order.currency")
    items = tuple(_item(item, index, currency) for index, item in enumerate(raw_items))
    return OrderItemSet(
        merchant_id=merchant_id,
        order_id=order_id_of(order),
        version=version,
        items=items,
        body_key=body_key,
    )


def _item(item: dict[str, Any], index: int, order_currency: str | None) -> OrderItem:
    # Field names are constants here and the item's index is added only when something is wrong:
    # formatting names eagerly was a measurable share of the worker's per-order time.
    try:
        return _item_fields(item, order_currency)
    except InvalidPayload as error:
        raise InvalidPayload(f"order.items[{index}].{error}") from None


def _item_fields(item: dict[str, Any], order_currency: str | None) -> OrderItem:
    product = obj(item.get("product"), field="product")
    amounts = obj(item.get("amounts"), field="amounts")
    quantity = parse_decimal(item.get("quantity"), field="quantity")
    if quantity is None:
        raise InvalidPayload("quantity is missing")
    line_total = parse_decimal(amounts.get("total"), field="amounts.total")
    unit_price = parse_decimal(amounts.get("price_without_tax"), field="amounts.price_without_tax")
    if line_total is None or unit_price is None:
        raise InvalidPayload("amounts needs total and price_without_tax")
    return OrderItem(
        item_id=parse_id(item.get("id"), field="id"),
        product_id=parse_optional_id(product.get("id", item.get("product_id")), field="product.id"),
        sku=text(item.get("sku") or product.get("sku"), field="sku", limit=200) or "",
        name=text(item.get("name") or product.get("name"), field="name", limit=500) or "",
        quantity=quantity,
        unit_price=unit_price,
        discount=amount_or_zero(amounts.get("total_discount"), field="amounts.total_discount"),
        tax=amount_or_zero(amounts.get("tax"), field="amounts.tax"),
        line_total=line_total,
        currency=parse_currency(item.get("currency"), field="currency") or order_currency,
        **_options(item.get("options")),
    )


def _options(raw: Any) -> dict[str, Any]:
    """A line item's chosen options, one entry per chosen value (a checkbox option can have
    several), and the variant key they make."""
    if not raw:
        return {}
    if not isinstance(raw, list):
        raise InvalidPayload("options must be a list")
    names: list[str] = []
    values: list[str] = []
    prices: list[Decimal] = []
    for option in raw:
        entry = obj(option, field="options[]")
        name = text(entry.get("name"), field="options[].name", limit=200) or ""
        chosen = entry.get("value")
        for value in chosen if isinstance(chosen, list) else [] if chosen is None else [chosen]:
            if isinstance(value, dict):
                label = text(value.get("name"), field="options[].value.name", limit=500) or ""
                price = amount_or_zero(value.get("price"), field="options[].value.price")
            else:  # text and number options carry the customer's input as the value
                label = text(value, field="options[].value", limit=500) or ""
                price = ZERO
            names.append(name)
            values.append(label)
            prices.append(price)
    variant = "|".join(sorted(f"{n}={v}" for n, v in zip(names, values, strict=True)))
    return {
        "option_names": tuple(names),
        "option_values": tuple(values),
        "option_prices": tuple(prices),
        "variant_key": variant,
    }


def _status(value: Any) -> tuple[str | None, str | None]:
    if isinstance(value, dict):
        slug = text(value.get("slug"), field="order.status.slug", limit=64)
        customized = obj(value.get("customized"), field="order.status.customized")
        name = text(customized.get("name") or value.get("name"), field="order.status.name")
        return slug, name
    name = text(value, field="order.status", limit=200)
    return None, name


def _currency_of(money: Any) -> str | None:
    if isinstance(money, dict):
        return parse_currency(money.get("currency"), field="order.total.currency")
    return None


def _discount_total(discounts: Any) -> Decimal | None:
    if discounts is None:
        return None
    if not isinstance(discounts, list):
        raise InvalidPayload("order.amounts.discounts must be a list")
    total = Decimal(0)
    for index, discount in enumerate(discounts):
        entry = obj(discount, field=f"order.amounts.discounts[{index}]")
        total += amount_or_zero(
            entry.get("discount"), field=f"order.amounts.discounts[{index}].discount"
        )
    return total


def _coupon_codes(discounts: Any) -> str | None:
    """The codes of the order's discounts, in order, each once ("A,B"); None if none."""
    if not isinstance(discounts, list):
        return None
    codes: list[str] = []
    for index, discount in enumerate(discounts):
        entry = obj(discount, field=f"order.amounts.discounts[{index}]")
        code = text(entry.get("code"), field=f"order.amounts.discounts[{index}].code", limit=64)
        if code and code not in codes:
            codes.append(code)
    return ",".join(codes) or None


def _flag(value: Any, *, field: str) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1"):
        return value in (1, "1")
    raise InvalidPayload(f"{field}: expected true or false")
