"""A generated Salla store for the Admin API emulator: products, customers, 30 months of orders.

Payloads come from `salla_samples.StoreSimulation`, so the emulator's order details have the same
shape as the webhooks the pipeline already loads; list rows are the Admin API's summaries.
`truth()` answers "what should a sync of this window load?" from the store's own data,
independently of the pipeline's code.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from data_pipeline.devtools.salla_samples import RIYADH, SimOrder, StoreSimulation, php_date


@dataclass
class MerchantTokens:
    access_token: str
    refresh_token: str
    expires_at: float  # Unix seconds
    revoked: bool = False


@dataclass
class EmulatedStore:
    merchant_id: int
    simulation: StoreSimulation
    tokens: MerchantTokens
    orders: dict[int, SimOrder] = field(default_factory=dict)
    order_ids_by_date: list[int] = field(default_factory=list)  # newest first, as Salla lists
    deleted_products: set[int] = field(default_factory=set)
    deleted_customers: set[int] = field(default_factory=set)

    @property
    def products(self) -> list[dict[str, Any]]:
        return [
            e["data"]
            for e in self.simulation.events
            if e["event"] == "product.created" and e["data"]["id"] not in self.deleted_products
        ]

    @property
    def customers(self) -> list[dict[str, Any]]:
        return [
            e["data"]
            for e in self.simulation.events
            if e["event"] == "customer.created" and e["data"]["id"] not in self.deleted_customers
        ]

    def order_detail(self, order_id: int) -> dict[str, Any]:
        return self.simulation._order_payload(self.orders[order_id])

    def order_summary(self, order_id: int) -> dict[str, Any]:
        detail = self.order_detail(order_id)
        return {
            "id": detail["id"],
            "reference_id": detail["reference_id"],
            "total": detail["amounts"]["total"],
            "date": detail["date"],
            "status": detail["status"],
            "payment_method": detail["payment_method"],
            "can_cancel": True,
            "items": [
                {"name": i["name"], "quantity": i["quantity"], "thumbnail": ""}
                for i in detail["items"]
            ],
        }

    def local_date(self, order_id: int) -> date:
        return self.orders[order_id].created.astimezone(RIYADH).date()

    def set_status(self, order_id: int, slug: str) -> dict[str, Any]:
        self.orders[order_id].status = slug
        return self.order_detail(order_id)

    def truth(self, start: date, end: date) -> dict[str, Any]:
        """Orders created in [start, end] (Riyadh dates): counts and sums, from the store itself."""
        chosen = [o for i, o in self.orders.items() if start <= self.local_date(i) <= end]
        return {
            "orders": len(chosen),
            "total": str(sum((o.total for o in chosen), Decimal(0))),
            "line_items": sum(len(o.lines) for o in chosen),
            "line_total": str(sum((line.total for o in chosen for line in o.lines), Decimal(0))),
            "products": len(self.products),
            "customers": len(self.customers),
        }


def generate_store(
    merchant_id: int,
    *,
    orders: int,
    seed: int = 1,
    months: int = 30,
    products: int = 75,
    customers: int | None = None,
    today: date | None = None,
) -> EmulatedStore:
    """A store whose orders are spread over the last `months` months (newest an hour old)."""
    today = today or datetime.now(RIYADH).date()
    start = datetime.combine(today - timedelta(days=months * 30), datetime.min.time(), RIYADH)
    simulation = StoreSimulation(merchant_id=merchant_id, seed=seed, start=start)
    simulation.create_products(products)
    simulation.create_customers(customers if customers is not None else max(10, orders // 10))
    # Orders spread evenly over the months, the last one no later than an hour ago.
    span_minutes = (datetime.now(RIYADH) - timedelta(hours=1) - start).total_seconds() / 60
    gap = max(1.0, 2 * span_minutes / max(orders, 1))
    placed = []
    for _ in range(orders):
        order = simulation.create_order(gap_minutes=gap)
        if order.created > datetime.now(RIYADH) - timedelta(hours=1):
            order.created = datetime.now(RIYADH) - timedelta(hours=1)
        placed.append(order)
    for index, order in enumerate(placed):
        order.status = ("completed", "delivered", "canceled", "in_progress")[index % 4]
    store = EmulatedStore(
        merchant_id=merchant_id,
        simulation=simulation,
        tokens=MerchantTokens(
            access_token="at_" + secrets.token_urlsafe(24),
            refresh_token="rt_" + secrets.token_urlsafe(24),
            expires_at=(datetime.now(RIYADH) + timedelta(days=14)).timestamp(),
        ),
        orders={o.order_id: o for o in placed},
    )
    store.order_ids_by_date = [
        o.order_id for o in sorted(placed, key=lambda o: o.created, reverse=True)
    ]
    for product in store.products:
        product["updated_at"] = php_date(start)
    return store
