"""The warehouse state that retrieval documents are built from: the newest version of each
product and order (with its line items), read straight from the versioned tables so deleted
entities come back as deletions rather than silently missing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse

_PRODUCT_COLUMNS = (
    "name",
    "description",
    "sku",
    "price",
    "sale_price",
    "currency",
    "status",
    "category",
)
_ORDER_COLUMNS = (
    "reference_id",
    "status",
    "status_name",
    "total",
    "currency",
    "payment_method",
    "city",
    "created_at",
)


@dataclass(slots=True)
class CurrentState:
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)  # live entities by id
    deleted: set[int] = field(default_factory=set)  # deleted in the warehouse
    items: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # order lines


class WarehouseDocuments:
    def __init__(self, warehouse: ClickHouseWarehouse) -> None:
        self._warehouse = warehouse
        self._db = warehouse.database

    async def products(self, merchant_id: int, ids: Sequence[int]) -> CurrentState:
        state = CurrentState()
        if not ids:
            return state
        latest = ", ".join(f"argMax({c}, version) AS {c}" for c in _PRODUCT_COLUMNS)
        result = await asyncio.to_thread(
            self._warehouse.query,
            f"SELECT product_id, argMax(is_deleted, version) AS deleted, {latest}, "  # noqa: S608
            f"max(event_time) AS updated_at FROM {self._db}.product_versions "
            "WHERE merchant_id = {m:UInt64} AND product_id IN {ids:Array(UInt64)} "
            "GROUP BY product_id",
            {"m": merchant_id, "ids": list(ids)},
        )
        for row in map(lambda r: dict(zip(result.columns, r, strict=True)), result.rows):
            if row.pop("deleted"):
                state.deleted.add(row["product_id"])
            else:
                state.rows[row["product_id"]] = row
        return state

    async def orders(self, merchant_id: int, ids: Sequence[int]) -> CurrentState:
        state = CurrentState()
        if not ids:
            return state
        latest = ", ".join(f"argMax({c}, version) AS {c}" for c in _ORDER_COLUMNS)
        parameters = {"m": merchant_id, "ids": list(ids)}
        headers, lines = await asyncio.gather(
            asyncio.to_thread(
                self._warehouse.query,
                f"SELECT order_id, argMax(is_deleted, version) AS deleted, {latest} "  # noqa: S608
                f"FROM {self._db}.order_versions "
                "WHERE merchant_id = {m:UInt64} AND order_id IN {ids:Array(UInt64)} "
                "GROUP BY order_id",
                parameters,
            ),
            asyncio.to_thread(
                self._warehouse.query,
                "SELECT order_id, items.product_id AS product_id, items.sku AS sku, "  # noqa: S608
                "items.name AS name, items.quantity AS quantity "
                f"FROM {self._db}.order_item_sets FINAL ARRAY JOIN items "
                "WHERE merchant_id = {m:UInt64} AND order_id IN {ids:Array(UInt64)} "
                "ORDER BY order_id, items.item_id",
                parameters,
            ),
        )
        for row in map(lambda r: dict(zip(headers.columns, r, strict=True)), headers.rows):
            if row.pop("deleted"):
                state.deleted.add(row["order_id"])
            else:
                state.rows[row["order_id"]] = row
        for line in map(lambda r: dict(zip(lines.columns, r, strict=True)), lines.rows):
            state.items.setdefault(line.pop("order_id"), []).append(line)
        return state
