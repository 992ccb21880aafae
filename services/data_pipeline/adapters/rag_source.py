"""The warehouse state that retrieval documents are built from: each product's and order's
current state (with its line items) from the current-state tables, and, for the ids not found
there, whether the versions say they were deleted (so a deletion comes back as a deletion, not
as silently missing)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from data_pipeline.adapters.clickhouse_current import newest_first
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


_CURRENT = "SETTINGS do_not_merge_across_partitions_select_final = 1"
_SALE_PRICE = "if(sale_price = 0 OR sale_ends_at <= now64(3), NULL, sale_price) AS sale_price"


class WarehouseDocuments:
    def __init__(self, warehouse: ClickHouseWarehouse) -> None:
        self._warehouse = warehouse
        self._db = warehouse.database

    async def products(self, merchant_id: int, ids: Sequence[int]) -> CurrentState:
        state = CurrentState()
        if not ids:
            return state
        parameters = {"m": merchant_id, "ids": list(ids)}
        # The contract's sale rule (0 = no sale, an ended sale is none): see clickhouse_schema.
        columns = ", ".join(
            _SALE_PRICE if column == "sale_price" else column for column in _PRODUCT_COLUMNS
        )
        result = await self._query(
            f"SELECT product_id, version, {columns}, updated_at "  # noqa: S608
            f"FROM {self._db}.products_current FINAL "
            "WHERE merchant_id = {m:UInt64} AND product_id IN {ids:Array(UInt64)} "
            f"AND is_deleted = 0 {_CURRENT}",
            parameters,
        )
        for row in map(lambda r: dict(zip(result.columns, r, strict=True)), result.rows):
            state.rows[row["product_id"]] = row
        state.deleted = await self._deleted(
            "product_versions", "product_id", merchant_id, ids, state
        )
        return state

    async def orders(self, merchant_id: int, ids: Sequence[int]) -> CurrentState:
        state = CurrentState()
        if not ids:
            return state
        parameters = {"m": merchant_id, "ids": list(ids)}
        result = await self._query(
            f"SELECT order_id, version, {', '.join(_ORDER_COLUMNS)}, "  # noqa: S608
            "items.product_id, items.sku, items.name, items.quantity, items.item_id "
            f"FROM {self._db}.orders_current FINAL "
            "WHERE merchant_id = {m:UInt64} AND order_id IN {ids:Array(UInt64)} "
            f"AND is_deleted = 0 {_CURRENT}",
            parameters,
        )
        for values in result.rows:
            row = dict(zip(result.columns, values, strict=True))
            lines = sorted(
                zip(
                    row.pop("items.item_id"),
                    row.pop("items.product_id"),
                    row.pop("items.sku"),
                    row.pop("items.name"),
                    row.pop("items.quantity"),
                    strict=True,
                )
            )
            state.rows[row["order_id"]] = row
            if lines:
                state.items[row["order_id"]] = [
                    {"product_id": product, "sku": sku, "name": name, "quantity": quantity}
                    for _, product, sku, name, quantity in lines
                ]
        state.deleted = await self._deleted("order_versions", "order_id", merchant_id, ids, state)
        return state

    async def _deleted(
        self, table: str, key: str, merchant_id: int, ids: Sequence[int], state: CurrentState
    ) -> set[int]:
        missing = [i for i in ids if i not in state.rows]
        if not missing:
            return set()
        result = await self._query(
            f"SELECT {key} FROM {self._db}.{table} "  # noqa: S608
            f"WHERE merchant_id = {{m:UInt64}} AND {key} IN {{ids:Array(UInt64)}} "
            f"GROUP BY {key} HAVING argMax(is_deleted, {newest_first()}) = 1",
            {"m": merchant_id, "ids": missing},
        )
        return {row[0] for row in result.rows}

    async def _query(self, sql: str, parameters: dict[str, Any]) -> Any:
        # Read right after another instance's insert, possibly through another replica.
        return await asyncio.to_thread(
            self._warehouse.query, sql, parameters, read_after_write=True
        )
