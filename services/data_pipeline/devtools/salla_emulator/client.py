"""Driving the emulator from the demo, benchmarks and tests: stores, faults, truth, stats."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx

from data_pipeline.devtools.salla_samples import RIYADH


class EmulatorClient:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=60)

    @property
    def api_base_url(self) -> str:
        return self.url + "/admin/v2"

    @property
    def token_url(self) -> str:
        return self.url + "/oauth2/token"

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    async def create_merchant(
        self, merchant_id: int, *, orders: int, seed: int = 1, months: int = 30, products: int = 75
    ) -> dict[str, Any]:
        spec = {
            "merchant_id": merchant_id,
            "orders": orders,
            "seed": seed,
            "months": months,
            "products": products,
        }
        result: dict[str, Any] = await self._call("POST", "/_emulator/merchants", json=spec)
        return result

    async def truth(self, merchant_id: int, start: str, end: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "GET", f"/_emulator/merchants/{merchant_id}/truth", params={"from": start, "to": end}
        )
        return result

    async def tokens(self, merchant_id: int) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "GET", f"/_emulator/merchants/{merchant_id}/tokens"
        )
        return result

    async def expire_token(self, merchant_id: int) -> None:
        await self._call("POST", f"/_emulator/merchants/{merchant_id}/tokens")

    async def delete_product(self, merchant_id: int, product_id: int) -> None:
        await self._call("DELETE", f"/_emulator/merchants/{merchant_id}/products/{product_id}")

    async def delete_customer(self, merchant_id: int, customer_id: int) -> None:
        await self._call("DELETE", f"/_emulator/merchants/{merchant_id}/customers/{customer_id}")

    async def delete_order(self, merchant_id: int, order_id: int) -> None:
        await self._call("DELETE", f"/_emulator/merchants/{merchant_id}/orders/{order_id}")

    async def set_order_status(self, merchant_id: int, order_id: int, slug: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "POST",
            f"/_emulator/merchants/{merchant_id}/orders/{order_id}/status",
            json={"slug": slug},
        )
        return result

    async def configure(self, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("PUT", "/_emulator/config", json=changes)
        return result

    async def fault(
        self,
        status: int,
        *,
        count: int = 1,
        path: str = "/admin/v2/",
        retry_after: int | None = None,
        answer: str | None = None,
    ) -> None:
        """The next `count` requests under `path` fail with `status`; for `/oauth2/token`,
        `answer` ("unreadable" or "hang") spoils the answer after Salla rotated the tokens."""
        spec = {
            "status": status,
            "count": count,
            "path": path,
            "retry_after": retry_after,
            "answer": answer,
        }
        await self._call("POST", "/_emulator/faults", json=spec)

    async def stats(self, *, reset: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("DELETE" if reset else "GET", "/_emulator/stats")
        return result

    async def aclose(self) -> None:
        await self._http.aclose()


def authorization_event(merchant_id: int, tokens: dict[str, Any]) -> bytes:
    """The app.store.authorize webhook Salla sends when the merchant installs the app."""
    document = {
        "event": "app.store.authorize",
        "merchant": merchant_id,
        "created_at": datetime.now(RIYADH).strftime("%Y-%m-%d %H:%M:%S"),
        "data": {
            "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"],
            "expires": int(tokens["expires_at"]),
            "scope": "settings.read orders.read products.read customers.read offline_access",
            "token_type": "bearer",
        },
    }
    return json.dumps(document).encode()
