"""Domain entities produced from Salla payloads.

Every warehouse entity is one *version* of a Salla object: `version` orders versions of the same
object (see `versioning`), and fields the payload did not carry are None so that a partial
payload never blanks what an earlier one said. No personal data (names, phones, e-mails,
addresses) is kept: city and country are the finest location we store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class OrderItem:
    item_id: int
    product_id: int | None
    sku: str
    name: str
    quantity: Decimal
    unit_price: Decimal
    discount: Decimal
    tax: Decimal
    line_total: Decimal
    currency: str | None


@dataclass(frozen=True, slots=True)
class OrderVersion:
    merchant_id: int
    order_id: int
    version: int
    event_time: datetime
    reference_id: int | None = None
    status: str | None = None
    status_name: str | None = None
    total: Decimal | None = None
    sub_total: Decimal | None = None
    shipping_cost: Decimal | None = None
    tax: Decimal | None = None
    discount: Decimal | None = None
    currency: str | None = None
    payment_method: str | None = None
    customer_id: int | None = None
    city: str | None = None
    country: str | None = None
    source: str | None = None
    created_at: datetime | None = None
    is_deleted: bool = False


@dataclass(frozen=True, slots=True)
class OrderItemSet:
    """The complete set of line items of an order at `version`; replaces earlier sets whole."""

    merchant_id: int
    order_id: int
    version: int
    items: tuple[OrderItem, ...]


@dataclass(frozen=True, slots=True)
class ProductVersion:
    merchant_id: int
    product_id: int
    version: int
    event_time: datetime
    name: str | None = None
    description: str | None = None
    sku: str | None = None
    price: Decimal | None = None
    sale_price: Decimal | None = None
    currency: str | None = None
    status: str | None = None
    product_type: str | None = None
    quantity: int | None = None
    category: str | None = None
    updated_at: datetime | None = None
    is_deleted: bool = False


@dataclass(frozen=True, slots=True)
class CustomerVersion:
    merchant_id: int
    customer_id: int
    version: int
    event_time: datetime
    city: str | None = None
    country: str | None = None
    country_code: str | None = None
    currency: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AbandonedCartVersion:
    merchant_id: int
    cart_id: int
    version: int
    event_time: datetime
    customer_id: int | None = None
    total: Decimal | None = None
    subtotal: Decimal | None = None
    discount: Decimal | None = None
    currency: str | None = None
    item_count: Decimal | None = None
    coupon_code: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


WarehouseEntity = (
    OrderVersion | OrderItemSet | ProductVersion | CustomerVersion | AbandonedCartVersion
)


@dataclass(frozen=True, slots=True)
class MerchantAuthorized:
    """OAuth tokens delivered by `app.store.authorize`; stored encrypted, never in the warehouse."""

    merchant_id: int
    version: int
    access_token: str
    refresh_token: str
    expires_at: datetime | None
    scope: str

    def __repr__(self) -> str:  # tokens must never reach a log line
        return f"MerchantAuthorized(merchant_id={self.merchant_id}, version={self.version})"


@dataclass(frozen=True, slots=True)
class MerchantInstallChanged:
    merchant_id: int
    version: int
    installed: bool


MerchantChange = MerchantAuthorized | MerchantInstallChanged
