"""Webhook events to domain changes, routed by an explicit event-type → handler table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from data_pipeline.domain import (
    app_events,
    catalog,
    customers,
    fulfilment,
    invoices,
    orders,
    reviews,
)
from data_pipeline.domain.dates import parse_optional_datetime
from data_pipeline.domain.envelope import Envelope
from data_pipeline.domain.model import MerchantChange, OrderVersion, WarehouseEntity
from data_pipeline.domain.records import record
from data_pipeline.domain.versioning import (
    body_key,
    make_version,
    order_progress,
    rank_for_event,
)
from data_pipeline.errors import InvalidPayload


@record
class Transformation:
    """What one event changes. `modeled` is False for event types we deliberately ignore."""

    modeled: bool
    entities: tuple[WarehouseEntity, ...] = ()
    merchant_changes: tuple[MerchantChange, ...] = ()


Handler = Callable[[Envelope], Transformation]


def transform(envelope: Envelope) -> Transformation:
    handler = HANDLERS.get(envelope.event)
    if handler is None:
        return Transformation(modeled=False)
    return handler(envelope)


def is_modeled(event: str) -> bool:
    return event in HANDLERS


def _stamp(
    envelope: Envelope, own_time: datetime | None, progress: int = 0
) -> tuple[int, datetime, int]:
    """Version, event time (the entity's own update time, else the envelope's created_at) and
    the body's key: the version orders states, the key keeps two distinct bodies of one
    version apart."""
    event_time = own_time or envelope.created_at
    if event_time is None:
        raise InvalidPayload("event has no created_at and the entity no update time")
    rank = rank_for_event(envelope.event)
    version = make_version(event_time, rank, envelope.body_sha256, progress)
    return version, event_time, body_key(envelope.body_sha256)


def _order(envelope: Envelope) -> Transformation:
    order = orders.unwrap_order(envelope.data)
    own = parse_optional_datetime(order.get("updated_at"), field="order.updated_at")
    status = order.get("status")
    slug = status.get("slug") if isinstance(status, dict) else None
    version, event_time, key = _stamp(
        envelope, own, order_progress(slug if isinstance(slug, str) else None)
    )
    merchant = envelope.merchant_id
    if envelope.event == "order.deleted":
        tombstone = OrderVersion(
            merchant_id=merchant,
            order_id=orders.order_id_of(order),
            version=version,
            body_key=key,
            event_time=event_time,
            is_deleted=True,
        )
        return Transformation(modeled=True, entities=(tombstone,))
    header = orders.order_version(
        order, merchant_id=merchant, version=version, event_time=event_time, body_key=key
    )
    items = orders.order_item_set(order, merchant_id=merchant, version=version, body_key=key)
    shipments = fulfilment.order_shipments(
        order,
        merchant_id=merchant,
        order_id=header.order_id,
        version=version,
        event_time=event_time,
        body_key=key,
    )
    entities = (header,) if items is None else (header, items)
    return Transformation(modeled=True, entities=entities + shipments)


def _order_shipment(envelope: Envelope) -> Transformation:
    """order.shipment.*: a shipment payload, or the order model with its shipments."""
    data = envelope.data
    if not fulfilment.is_shipment_model(data):
        return _order(envelope)
    return _shipment(envelope)


def _shipment(envelope: Envelope) -> Transformation:
    shipment = envelope.data
    version, event_time, key = _stamp(envelope, None)
    entity = fulfilment.shipment_version(
        shipment,
        merchant_id=envelope.merchant_id,
        version=version,
        event_time=event_time,
        event=envelope.event,
        body_key=key,
    )
    return Transformation(modeled=True, entities=(entity,))


def _invoice(envelope: Envelope) -> Transformation:
    version, event_time, key = _stamp(envelope, None)
    entity = invoices.invoice_version(
        envelope.data,
        merchant_id=envelope.merchant_id,
        version=version,
        event_time=event_time,
        body_key=key,
    )
    return Transformation(modeled=True, entities=(entity,))


def _review(envelope: Envelope) -> Transformation:
    version, event_time, key = _stamp(envelope, None)
    entity = reviews.review_version(
        envelope.data,
        merchant_id=envelope.merchant_id,
        version=version,
        event_time=event_time,
        body_key=key,
    )
    return Transformation(modeled=True, entities=(entity,))


def _product(envelope: Envelope) -> Transformation:
    product = envelope.data
    version, event_time, key = _stamp(envelope, catalog.product_updated_at(product))
    build = (
        catalog.product_tombstone
        if envelope.event == "product.deleted"
        else (catalog.product_version)
    )
    entity = build(
        product,
        merchant_id=envelope.merchant_id,
        version=version,
        event_time=event_time,
        body_key=key,
    )
    return Transformation(modeled=True, entities=(entity,))


def _customer(envelope: Envelope) -> Transformation:
    customer = envelope.data
    version, event_time, key = _stamp(envelope, customers.customer_updated_at(customer))
    entity = customers.customer_version(
        customer,
        merchant_id=envelope.merchant_id,
        version=version,
        event_time=event_time,
        signed_up=envelope.event == "customer.created",
        body_key=key,
    )
    return Transformation(modeled=True, entities=(entity,))


def _cart(envelope: Envelope) -> Transformation:
    cart = envelope.data
    version, event_time, key = _stamp(envelope, customers.cart_updated_at(cart))
    entity = customers.cart_version(
        cart,
        merchant_id=envelope.merchant_id,
        version=version,
        event_time=event_time,
        purchased=envelope.event == customers.CART_PURCHASED,
        body_key=key,
    )
    return Transformation(modeled=True, entities=(entity,))


def _app(envelope: Envelope) -> Transformation:
    version, _, _ = _stamp(envelope, None)
    merchant = envelope.merchant_id
    installed = app_events.install_change(envelope.event, merchant_id=merchant, version=version)
    if envelope.event != "app.store.authorize":
        return Transformation(modeled=True, merchant_changes=(installed,))
    tokens = app_events.authorization(envelope.data, merchant_id=merchant, version=version)
    return Transformation(modeled=True, merchant_changes=(tokens, installed))


# Snapshots read from the Admin API by historical sync, wrapped as events so that they take the
# same transform and versioning path (and the same raw archive and replay) as webhooks. Their
# envelope `created_at` is the fetch time and their rank is the lowest: a webhook at or after
# the fetch always wins.
BACKFILL_EVENTS = {
    "order.backfilled": "order",
    "product.backfilled": "product",
    "customer.backfilled": "customer",
}

HANDLERS: dict[str, Handler] = {
    **dict.fromkeys(orders.ORDER_EVENTS, _order),
    **dict.fromkeys(catalog.PRODUCT_EVENTS, _product),
    **dict.fromkeys(customers.CUSTOMER_EVENTS, _customer),
    **dict.fromkeys(customers.CART_EVENTS, _cart),
    **dict.fromkeys(app_events.APP_EVENTS, _app),
    **dict.fromkeys(invoices.INVOICE_EVENTS, _invoice),
    **dict.fromkeys(fulfilment.SHIPMENT_EVENTS, _shipment),
    **dict.fromkeys(fulfilment.ORDER_SHIPMENT_EVENTS, _order_shipment),
    **dict.fromkeys(reviews.REVIEW_EVENTS, _review),
    "order.backfilled": _order,
    "product.backfilled": _product,
    "customer.backfilled": _customer,
}
