"""Domain entities produced from Salla payloads.

Every warehouse entity is one *version* of a Salla object: `version` orders versions of the same
object (see `versioning`), and fields the payload did not carry are None so that a partial
payload never blanks what an earlier one said. No personal data (names, phones, e-mails,
addresses) is kept: city and country are the finest location we store.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from data_pipeline.domain.records import record


@record
class ItemOption:
    """One chosen option value of a line item (size, add-on), with the price it adds."""

    name: str
    value: str
    price: Decimal


@record
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
    # Chosen options as parallel tuples (the warehouse stores them as parallel arrays), and a
    # stable key of the variant they make: "name=value|name=value", sorted; "" for none.
    option_names: tuple[str, ...] = ()
    option_values: tuple[str, ...] = ()
    option_prices: tuple[Decimal, ...] = ()
    variant_key: str = ""

    @property
    def options(self) -> tuple[ItemOption, ...]:
        return tuple(
            ItemOption(name, value, price)
            for name, value, price in zip(
                self.option_names, self.option_values, self.option_prices, strict=True
            )
        )


@record
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
    cod_fee: Decimal | None = None  # cash-on-delivery fee: part of the total
    coupon_code: str | None = None
    is_draft: bool | None = None  # a draft is not a sale
    is_deleted: bool = False
    # Fields the payload set to null (or emptied), as opposed to fields it did not carry: None
    # means "not in this payload" everywhere else, and must not hide a value that was removed.
    cleared: tuple[str, ...] = ()
    # The first 64 bits of the body's SHA-256: with `version`, the row's key, so that two
    # distinct bodies never share one (domain/versioning.py). 0: stored before it existed.
    body_key: int = 0


@record
class OrderItemSet:
    """The complete set of line items of an order at `version`; replaces earlier sets whole."""

    merchant_id: int
    order_id: int
    version: int
    items: tuple[OrderItem, ...]
    body_key: int = 0  # with `version`, the row's key (see OrderVersion)


@record
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
    cost_price: Decimal | None = None
    # The sale price as Salla sent it (0 = no sale) and when that sale ends; the contract shows
    # the sale price only while a sale runs.
    sale_ends_at: datetime | None = None
    is_deleted: bool = False
    cleared: tuple[str, ...] = ()  # fields the payload set to null (see OrderVersion)
    body_key: int = 0  # with `version`, the row's key (see OrderVersion)


@record
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
    created_at: datetime | None = None  # sign-up time: set by customer.created only
    cleared: tuple[str, ...] = ()  # fields the payload set to null (see OrderVersion)
    body_key: int = 0  # with `version`, the row's key (see OrderVersion)


@record
class CartItem:
    product_id: int | None
    quantity: Decimal
    unit_price: Decimal | None
    line_total: Decimal | None


@record
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
    status: str | None = None  # active, purchased, ...
    checkout_url: str | None = None
    recovered_order_id: int | None = None
    recovered_at: datetime | None = None  # set by abandoned.cart.purchased
    items: tuple[CartItem, ...] | None = None  # the whole set, when the payload has one
    cleared: tuple[str, ...] = ()  # fields the payload set to null (see OrderVersion)
    body_key: int = 0  # with `version`, the row's key (see OrderVersion)


@record
class InvoiceLine:
    item_id: int | None
    product_id: int | None
    sku: str
    name: str
    quantity: Decimal
    unit_price: Decimal | None
    tax: Decimal | None
    tax_percent: Decimal | None
    total: Decimal | None


@record
class InvoiceVersion:
    """A tax invoice (`invoice.created`): the VAT figures Saudi e-invoicing reports."""

    merchant_id: int
    invoice_id: int
    version: int
    event_time: datetime
    order_id: int | None = None
    number: str | None = None
    invoice_type: str | None = None
    issued_at: datetime | None = None
    payment_method: str | None = None
    sub_total: Decimal | None = None
    shipping_cost: Decimal | None = None
    cod_fee: Decimal | None = None
    discount: Decimal | None = None
    tax: Decimal | None = None
    tax_percent: Decimal | None = None
    total: Decimal | None = None
    currency: str | None = None
    lines: tuple[InvoiceLine, ...] | None = None
    cleared: tuple[str, ...] = ()  # fields the payload set to null (see OrderVersion)
    body_key: int = 0  # with `version`, the row's key (see OrderVersion)


@record
class ShipmentVersion:
    merchant_id: int
    shipment_id: int
    version: int
    event_time: datetime
    order_id: int | None = None
    shipment_type: str | None = None  # shipment or return
    status: str | None = None
    courier_id: int | None = None
    courier_name: str | None = None
    tracking_number: str | None = None
    shipping_cost: Decimal | None = None
    cod_amount: Decimal | None = None
    currency: str | None = None
    is_international: bool | None = None
    created_at: datetime | None = None
    # First time the shipment was seen shipped / delivered (the earliest such version wins).
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    cleared: tuple[str, ...] = ()  # fields the payload set to null (see OrderVersion)
    body_key: int = 0  # with `version`, the row's key (see OrderVersion)


@record
class ReviewVersion:
    """A product (or store) rating. The text is kept only when it names no person and carries
    no contact (`content_withheld` says it was dropped)."""

    merchant_id: int
    review_id: int
    version: int
    event_time: datetime
    review_type: str | None = None
    product_id: int | None = None
    order_id: int | None = None
    rating: int | None = None
    content: str | None = None
    content_withheld: bool | None = None
    created_at: datetime | None = None
    cleared: tuple[str, ...] = ()  # fields the payload set to null (see OrderVersion)
    body_key: int = 0  # with `version`, the row's key (see OrderVersion)


WarehouseEntity = (
    OrderVersion
    | OrderItemSet
    | ProductVersion
    | CustomerVersion
    | AbandonedCartVersion
    | InvoiceVersion
    | ShipmentVersion
    | ReviewVersion
)


@record
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


@record
class MerchantInstallChanged:
    merchant_id: int
    version: int
    installed: bool


MerchantChange = MerchantAuthorized | MerchantInstallChanged
