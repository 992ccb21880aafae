"""Domain events the pipeline publishes for the rest of the platform: names, QStash topics and
JSON Schemas, shared by the service (which publishes) and the Pulumi program (which declares a
topic per event with its subscribers and exports the schema version).

Every event is a CloudEvents 1.0 structured JSON document. `data` carries ids, the entity's
`version` (consumers drop a delivery whose version is not newer than what they hold) and, where
known, the changed fields before and after. Never customer PII: ids, statuses and amounts only.

`python -m shared.domain_events` rewrites the checked-in schemas (shared/schemas/events/); a
test fails when they differ from what this module says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_VERSION = "1"
TOPIC_PREFIX = "event."  # QStash URL group names: letters, digits, '-', '.', '_'
SCHEMA_DIR = Path(__file__).parent / "schemas" / "events"

_ID = {"type": "integer", "minimum": 1}
_AMOUNT = {"type": ["string", "null"], "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
_TEXT = {"type": ["string", "null"], "maxLength": 200}


def _change(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"before": value, "after": value},
        "required": ["before", "after"],
        "additionalProperties": False,
    }


_ORDER_FIELDS: dict[str, dict[str, Any]] = {
    "status": _TEXT,
    "total": _AMOUNT,
    "subTotal": _AMOUNT,
    "shippingCost": _AMOUNT,
    "tax": _AMOUNT,
    "discount": _AMOUNT,
    "codFee": _AMOUNT,
    "currency": _TEXT,
    "paymentMethod": _TEXT,
    "couponCode": _TEXT,
    "customerId": {"type": ["integer", "null"]},
    "isDraft": {"type": ["boolean", "null"]},
}
_CART_FIELDS: dict[str, dict[str, Any]] = {
    "status": _TEXT,
    "total": _AMOUNT,
    "currency": _TEXT,
    "itemCount": _AMOUNT,
    "customerId": {"type": ["integer", "null"]},
    "recoveredOrderId": {"type": ["integer", "null"]},
}


def _changes(fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`{field: {before, after}}` for some of `fields`, at least one."""
    return {
        "type": "object",
        "properties": {name: _change(schema) for name, schema in fields.items()},
        "additionalProperties": False,
        "minProperties": 1,
    }


_CHANGED_ORDER = _changes(_ORDER_FIELDS)
_CHANGED_CART = _changes(_CART_FIELDS)


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "additionalProperties": False}


# event name -> (entity, the id field in `data`, the rest of `data`'s properties, required)
EVENTS: dict[str, tuple[str, str, dict[str, Any], tuple[str, ...]]] = {
    # An order the warehouse did not know before (whatever webhook first told it).
    "order.created": ("order", "orderId", {"state": _object(_ORDER_FIELDS)}, ("state",)),
    "order.status_changed": ("order", "orderId", {"status": _change(_TEXT)}, ("status",)),
    # Amounts, payment method, coupon, customer or draft flag changed (not the status).
    "order.updated": ("order", "orderId", {"changed": _CHANGED_ORDER}, ("changed",)),
    "order.deleted": ("order", "orderId", {}, ()),
    # A cart first seen abandoned; its later changes; its purchase.
    "cart.abandoned": ("cart", "cartId", {"state": _object(_CART_FIELDS)}, ("state",)),
    "cart.updated": ("cart", "cartId", {"changed": _CHANGED_CART}, ("changed",)),
    "cart.recovered": ("cart", "cartId", {"orderId": {"type": ["integer", "null"]}}, ()),
    "product.price_changed": (
        "product",
        "productId",
        {"price": _change(_AMOUNT), "currency": _TEXT},
        ("price",),
    ),
    "product.out_of_stock": ("product", "productId", {}, ()),
    "customer.created": ("customer", "customerId", {}, ()),
    # A historical sync's end (also on the notifications topic).
    "sync.completed": (
        "sync",
        "jobId",
        {"counts": {"type": "object", "additionalProperties": {"type": "integer"}}},
        (),
    ),
    "sync.failed": ("sync", "jobId", {"error": {"type": "string", "maxLength": 500}}, ("error",)),
    # A merchant's events dead-lettered this hour reached DLQ_ALERT_THRESHOLD (once per hour).
    "dlq.growing": (
        "dlq",
        "window",
        {"deadLettered": {"type": "integer", "minimum": 1}, "threshold": {"type": "integer"}},
        ("deadLettered", "threshold"),
    ),
}
EVENT_NAMES = tuple(EVENTS)
# Also copied to the `notifications` topic when it has subscribers (DOMAIN_EVENTS lists it).
NOTIFICATION_EVENTS = ("sync.completed", "sync.failed", "dlq.growing")
NOTIFICATIONS = "notifications"
TEXT_ID_ENTITIES = ("sync", "dlq")


def event_topic(name: str) -> str:
    """The (unprefixed) QStash URL group of one event: `event.order.created`."""
    return TOPIC_PREFIX + name


def id_field(name: str) -> str:
    """The name of the entity's id in `data` (`orderId`, `jobId`, …)."""
    return EVENTS[name][1]


def has_text_id(name: str) -> bool:
    """Sync jobs and DLQ hour windows are named by text; Salla entities by number."""
    return EVENTS[name][0] in TEXT_ID_ENTITIES


def event_type(name: str) -> str:
    return f"sa.salla.{name}.v{SCHEMA_VERSION}"


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of one event's CloudEvents document."""
    entity, id_field, properties, required = EVENTS[name]
    textual = entity in TEXT_ID_ENTITIES  # job ids, hour windows (2026-12-06T03)
    id_schema = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"} if textual else _ID
    data = {
        "type": "object",
        "properties": {
            "merchantId": _ID,
            id_field: id_schema,
            "version": {"type": "integer", "minimum": 0},
            **properties,
        },
        "required": ["merchantId", id_field, "version", *required],
        "additionalProperties": False,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://schemas.salla-pipeline.dev/events/{name}.v{SCHEMA_VERSION}.json",
        "title": f"{name} (CloudEvents 1.0, structured JSON)",
        "type": "object",
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "minLength": 1, "maxLength": 100},
            "source": {"type": "string", "pattern": "^salla-pipeline/[a-z]+$"},
            "type": {"const": event_type(name)},
            "time": {"type": "string", "format": "date-time"},
            "subject": {"type": "string", "pattern": f"^merchant/[0-9]+/{entity}/[^/]+$"},
            "datacontenttype": {"const": "application/json"},
            "data": data,
        },
        "required": ["specversion", "id", "source", "type", "time", "subject", "data"],
        "additionalProperties": False,
    }


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in EVENT_NAMES:
        path = directory / f"{name}.v{SCHEMA_VERSION}.json"
        path.write_text(json.dumps(schema(name), indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_schemas():
        print(path)
