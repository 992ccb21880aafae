"""Domain events from loaded versions: what changed for the rest of the platform. Pure.

Each entity key keeps the state its last events were derived from (`Tracked`: the newest version
seen and the fields events talk about, merged per field as the warehouse merges them: a value
or an explicit clear replaces, an absent field keeps). A version not newer than that state
changes nothing and derives nothing, so duplicates, redeliveries, replays and older versions
that arrive late publish nothing; a newer one derives the events of the difference, each
identified by (event, entity, version), which makes a re-derivation after a crash publish the
same ids (QStash drops them as duplicates).

Only ids, statuses and amounts leave: no names, contacts, addresses or free text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from data_pipeline.domain.model import (
    AbandonedCartVersion,
    CustomerVersion,
    OrderVersion,
    ProductVersion,
)

# entity type -> (entity name, id attribute, tracked attribute -> the name in events)
_TRACKED: dict[type, tuple[str, str, dict[str, str]]] = {
    OrderVersion: (
        "order",
        "order_id",
        {
            "status": "status",
            "total": "total",
            "sub_total": "subTotal",
            "shipping_cost": "shippingCost",
            "tax": "tax",
            "discount": "discount",
            "cod_fee": "codFee",
            "currency": "currency",
            "payment_method": "paymentMethod",
            "coupon_code": "couponCode",
            "customer_id": "customerId",
            "is_draft": "isDraft",
        },
    ),
    ProductVersion: (
        "product",
        "product_id",
        {"price": "price", "currency": "currency", "quantity": "quantity"},
    ),
    CustomerVersion: ("customer", "customer_id", {}),
    AbandonedCartVersion: (
        "cart",
        "cart_id",
        {
            "status": "status",
            "total": "total",
            "currency": "currency",
            "item_count": "itemCount",
            "customer_id": "customerId",
            "recovered_order_id": "recoveredOrderId",
        },
    ),
}


@dataclass(frozen=True, slots=True)
class DomainEvent:
    name: str  # order.created, …
    entity: str  # order, product, customer, cart, sync
    merchant_id: int
    entity_id: str
    version: int
    time: datetime  # the change's own time (the version's event time)
    data: dict[str, Any] = field(default_factory=dict)  # beyond ids and version

    @property
    def key(self) -> str:
        """Stable per (event, entity, version): the CloudEvents id and the deduplication id."""
        return f"{self.name}:{self.merchant_id}:{self.entity_id}:{self.version}"


@dataclass(frozen=True, slots=True)
class Tracked:
    version: int
    fields: dict[str, Any]  # event field name -> JSON value
    deleted: bool = False

    def to_json(self) -> bytes:
        return json.dumps(
            {"v": self.version, "f": self.fields, "d": self.deleted}, separators=(",", ":")
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Tracked:
        document = json.loads(raw)
        return cls(int(document["v"]), dict(document["f"]), bool(document["d"]))


def entity_key(entity: Any) -> str | None:
    """`order:<merchant>:<id>` for an entity events are derived from, else None."""
    tracked = _TRACKED.get(type(entity))
    if tracked is None:
        return None
    kind, id_attribute, _ = tracked
    return f"{kind}:{entity.merchant_id}:{getattr(entity, id_attribute)}"


def derive(previous: Tracked | None, entity: Any) -> tuple[Tracked | None, list[DomainEvent]]:
    """The new tracked state (None: unchanged) and the events of `entity`'s version."""
    kind, id_attribute, names = _TRACKED[type(entity)]
    if previous is not None and entity.version <= previous.version:
        return None, []
    fields = dict(previous.fields) if previous is not None else {}
    cleared = getattr(entity, "cleared", ())
    for attribute, name in names.items():
        value = getattr(entity, attribute)
        if value is not None or attribute in cleared:
            fields[name] = _json(value)
    deleted = bool(getattr(entity, "is_deleted", False))
    state = Tracked(entity.version, fields, deleted)

    def event(name: str, **data: Any) -> DomainEvent:
        entity_id = str(getattr(entity, id_attribute))
        return DomainEvent(
            name, kind, entity.merchant_id, entity_id, entity.version, entity.event_time, data
        )

    before = previous.fields if previous is not None else {}
    changed = {
        name: {"before": before.get(name), "after": value}
        for name, value in fields.items()
        if before.get(name) != value
    }
    return state, _events(kind, previous, state, changed, event)


def _events(
    kind: str, previous: Tracked | None, state: Tracked, changed: dict[str, Any], event: Any
) -> list[DomainEvent]:
    if kind == "order":
        if state.deleted:
            return [] if previous is not None and previous.deleted else [event("order.deleted")]
        if previous is None or previous.deleted:
            return [event("order.created", state=state.fields)]
        events = []
        if "status" in changed:
            events.append(event("order.status_changed", status=changed.pop("status")))
        if changed:
            events.append(event("order.updated", changed=changed))
        return events
    if kind == "product":
        events = []
        if previous is not None and "price" in changed and changed["price"]["before"] is not None:
            currency = state.fields.get("currency")
            events.append(event("product.price_changed", price=changed["price"], currency=currency))
        if "quantity" in changed and state.fields.get("quantity") == 0 and not state.deleted:
            events.append(event("product.out_of_stock"))
        return events
    if kind == "customer":
        return [event("customer.created")] if previous is None else []
    # cart
    purchased = (
        state.fields.get("recoveredOrderId") is not None
        or state.fields.get("status") == "purchased"
    )
    was_purchased = previous is not None and (
        previous.fields.get("recoveredOrderId") is not None
        or previous.fields.get("status") == "purchased"
    )
    if purchased and not was_purchased:
        return [event("cart.recovered", orderId=state.fields.get("recoveredOrderId"))]
    if previous is None:
        return [event("cart.abandoned", state=state.fields)]
    return [event("cart.updated", changed=changed)] if changed and not purchased else []


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):  # one spelling per amount: 12.50 and 12.5 are no change
        return format(value.normalize(), "f")
    if isinstance(value, bool | int | str) or value is None:
        return value
    return str(value)
