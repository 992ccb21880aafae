"""Salla products (webhook product model and Admin API products) to product versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from data_pipeline.domain.dates import parse_optional_datetime
from data_pipeline.domain.envelope import parse_id
from data_pipeline.domain.fields import integer, obj, text, with_cleared
from data_pipeline.domain.model import ProductVersion
from data_pipeline.domain.money import parse_currency, parse_decimal

PRODUCT_EVENTS: frozenset[str] = frozenset(
    {
        "product.created",
        "product.updated",
        "product.deleted",
        "product.available",
        "product.quantity.low",
        "product.price.updated",
        "product.status.updated",
        "product.image.updated",
        "product.category.updated",
        "product.brand.updated",
        "product.tags.updated",
    }
)


def product_id_of(product: dict[str, Any]) -> int:
    return parse_id(product.get("id"), field="product.id")


def product_updated_at(product: dict[str, Any]) -> datetime | None:
    return parse_optional_datetime(product.get("updated_at"), field="product.updated_at")


def product_version(
    product: dict[str, Any],
    *,
    merchant_id: int,
    version: int,
    event_time: datetime,
    body_key: int = 0,
) -> ProductVersion:
    price = product.get("price")
    version_ = ProductVersion(
        merchant_id=merchant_id,
        product_id=product_id_of(product),
        version=version,
        body_key=body_key,
        event_time=event_time,
        name=text(product.get("name"), field="product.name", limit=500),
        description=text(product.get("description"), field="product.description", limit=4000),
        sku=text(product.get("sku"), field="product.sku", limit=200),
        price=parse_decimal(price, field="product.price"),
        sale_price=parse_decimal(product.get("sale_price"), field="product.sale_price"),
        currency=parse_currency(
            (price.get("currency") if isinstance(price, dict) else None) or product.get("currency"),
            field="product.currency",
        ),
        status=text(product.get("status"), field="product.status", limit=32),
        product_type=text(product.get("type"), field="product.type", limit=32),
        quantity=integer(product.get("quantity"), field="product.quantity"),
        category=_first_category(product.get("categories")),
        updated_at=product_updated_at(product),
        # product.created says `cost_price`, product.price.updated says `cost`.
        cost_price=parse_decimal(
            product.get("cost_price", product.get("cost")), field="product.cost_price"
        ),
        sale_ends_at=_sale_end(product),
    )
    # Carried as null: unlimited stock (quantity null), a sale or a cost removed, text emptied.
    carried = {
        "description": "description" in product,
        "sku": "sku" in product,
        "sale_price": "sale_price" in product,
        "quantity": "quantity" in product,
        "category": "categories" in product,
        "cost_price": "cost_price" in product or "cost" in product,
    }
    return with_cleared(version_, carried)


def _sale_end(product: dict[str, Any]) -> datetime | None:
    """When the sale price stops applying: `sale_end` in the product model, `expired_at` on the
    sale price (or the product) in price updates. None: no end, or no sale."""
    sale = product.get("sale_price")
    if isinstance(sale, dict) and sale.get("expired_at") is not None:
        return parse_optional_datetime(sale["expired_at"], field="product.sale_price.expired_at")
    for name in ("sale_end", "expired_at"):
        if product.get(name) is not None:
            return parse_optional_datetime(product[name], field=f"product.{name}")
    return None


def product_tombstone(
    product: dict[str, Any],
    *,
    merchant_id: int,
    version: int,
    event_time: datetime,
    body_key: int = 0,
) -> ProductVersion:
    return ProductVersion(
        merchant_id=merchant_id,
        product_id=product_id_of(product),
        version=version,
        body_key=body_key,
        event_time=event_time,
        is_deleted=True,
    )


def _first_category(categories: Any) -> str | None:
    if not isinstance(categories, list) or not categories:
        return None
    first = obj(categories[0], field="product.categories[0]")
    return text(first.get("name"), field="product.categories[0].name", limit=200)
