"""Shipments: Salla's shipment model (`shipment.*` events, and `order.shipment.*` when they carry
a shipment) and the `shipments[]` an order payload lists.

Shape from Salla's shipment docs (docs.salla.dev/1726835m0, summarised in SallaApp's partners
agent kit; fixture tests/fixtures/salla/shipment.created.json). Ship-from and ship-to (names,
addresses, coordinates) are never read.

Fulfilment times are first-seen times: a version whose status says shipped (or later) stamps
`shipped_at`, a delivered one `delivered_at`, each with the event's time (or the payload's own
`shipped_at`/`delivered_at` when it has them), and the warehouse keeps the earliest of each.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from data_pipeline.domain.dates import parse_optional_datetime
from data_pipeline.domain.envelope import parse_id, parse_optional_id
from data_pipeline.domain.fields import obj, text, with_cleared
from data_pipeline.domain.model import ShipmentVersion
from data_pipeline.domain.money import parse_currency, parse_decimal
from data_pipeline.errors import InvalidPayload

SHIPMENT_EVENTS: frozenset[str] = frozenset(
    {"shipment.creating", "shipment.created", "shipment.updated", "shipment.cancelled"}
)
ORDER_SHIPMENT_EVENTS: frozenset[str] = frozenset(
    {
        "order.shipment.creating",
        "order.shipment.created",
        "order.shipment.cancelled",
        "order.shipment.return.creating",
        "order.shipment.return.created",
        "order.shipment.return.cancelled",
    }
)
_SHIPPED = frozenset({"shipped", "in_transit", "delivering", "delivered", "out_for_delivery"})
_DELIVERED = frozenset({"delivered"})


def is_shipment_model(data: dict[str, Any]) -> bool:
    """A shipment payload (it names its order) rather than an order payload."""
    return "order_id" in data and "amounts" not in data


def shipment_version(
    shipment: dict[str, Any],
    *,
    merchant_id: int,
    version: int,
    body_key: int = 0,
    event_time: datetime,
    event: str = "",
    order_id: int | None = None,
) -> ShipmentVersion:
    cancelled = event.endswith(".cancelled")
    status = _status(shipment.get("status")) or ("cancelled" if cancelled else None)
    total = shipment.get("total")
    cod = shipment.get("cash_on_delivery")
    created = parse_optional_datetime(shipment.get("created_at"), field="shipment.created_at")
    if created is None and event.endswith((".created", ".creating")):
        created = event_time
    version_ = ShipmentVersion(
        merchant_id=merchant_id,
        shipment_id=parse_id(shipment.get("id"), field="shipment.id"),
        version=version,
        body_key=body_key,
        event_time=event_time,
        order_id=parse_optional_id(shipment.get("order_id"), field="shipment.order_id") or order_id,
        shipment_type=text(shipment.get("type"), field="shipment.type", limit=32)
        or ("return" if ".return." in event else None),
        status=status,
        courier_id=parse_optional_id(shipment.get("courier_id"), field="shipment.courier_id"),
        courier_name=text(
            shipment.get("courier_name") or shipment.get("company"),
            field="shipment.courier_name",
            limit=200,
        ),
        tracking_number=text(
            shipment.get("tracking_number") or shipment.get("shipping_number"),
            field="shipment.tracking_number",
            limit=100,
        ),
        shipping_cost=parse_decimal(total, field="shipment.total"),
        cod_amount=parse_decimal(cod, field="shipment.cash_on_delivery"),
        currency=parse_currency(
            total.get("currency") if isinstance(total, dict) else None,
            field="shipment.total.currency",
        ),
        is_international=_flag(shipment.get("is_international")),
        created_at=created,
        shipped_at=_stamp(shipment, "shipped_at", status in _SHIPPED, event_time),
        delivered_at=_stamp(shipment, "delivered_at", status in _DELIVERED, event_time),
    )
    carried = {  # a tracking number withdrawn, a courier unassigned, COD switched off
        "tracking_number": "tracking_number" in shipment or "shipping_number" in shipment,
        "courier_name": "courier_name" in shipment or "company" in shipment,
        "courier_id": "courier_id" in shipment,
        "cod_amount": "cash_on_delivery" in shipment,
    }
    return with_cleared(version_, carried)


def order_shipments(
    order: dict[str, Any],
    *,
    merchant_id: int,
    order_id: int,
    version: int,
    event_time: datetime,
    body_key: int = 0,
) -> tuple[ShipmentVersion, ...]:
    """The shipments an order payload lists (`shipments[]`), as versions of their own."""
    raw = order.get("shipments")
    if not isinstance(raw, list):
        return ()
    shipments = []
    for index, entry in enumerate(raw):
        shipment = obj(entry, field=f"order.shipments[{index}]")
        if shipment.get("id") is None:
            continue  # a summary without an id cannot be tracked
        try:
            shipments.append(
                shipment_version(
                    shipment,
                    merchant_id=merchant_id,
                    version=version,
                    body_key=body_key,
                    event_time=event_time,
                    order_id=order_id,
                )
            )
        except InvalidPayload as error:
            raise InvalidPayload(f"order.shipments[{index}]: {error}") from None
    return tuple(shipments)


def _status(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("slug") or value.get("name")
    status = text(value, field="shipment.status", limit=64)
    return status.lower().replace(" ", "_") if status else None


def _stamp(
    shipment: dict[str, Any], name: str, reached: bool, event_time: datetime
) -> datetime | None:
    own = parse_optional_datetime(shipment.get(name), field=f"shipment.{name}")
    return own or (event_time if reached else None)


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None
