"""The Salla Admin API emulator: the endpoints historical sync uses, with Salla's quirks.

- `GET /admin/v2/orders` (summaries, newest first, `from_date`/`to_date` inclusive Riyadh dates,
  `page`/`per_page` ≤ 60, `links` rotating through `{}`, `[]` and `{"next": ...}`),
  `GET /admin/v2/orders/{id}` (the full order), `GET /admin/v2/products` (page pagination),
  `GET /admin/v2/customers` (the `{count, current, next}` cursor variant, own 500/10 min cap).
- `POST /oauth2/token`: single-use refresh tokens; reusing one revokes the merchant's tokens.
- Bearer checks (unknown, expired, revoked → 401 in Salla's error envelope); a leaky bucket per
  store with `X-RateLimit-*` headers and 429 + `Retry-After`.
- Faults for tests and benchmarks: 5xx and timeouts at a rate, empty pages, and scripted
  failures (`POST /_emulator/faults`). Control and inspection under `/_emulator/`.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from data_pipeline.devtools.salla_emulator.limits import LeakyBucket
from data_pipeline.devtools.salla_emulator.store import (
    EmulatedStore,
    MerchantTokens,
    generate_store,
)
from data_pipeline.devtools.salla_samples import RIYADH

MAX_PER_PAGE = 60
TOKEN_LIFETIME_SECONDS = 14 * 24 * 3600
LINK_STYLES = ("empty_object", "empty_list", "next")


@dataclass
class Faults:
    error_rate: float = 0.0  # share of API requests answered 500/502/503
    timeout_rate: float = 0.0  # share that hang for `hang_seconds` before answering
    hang_seconds: float = 20.0
    empty_page_rate: float = 0.0  # share of list pages answered with no rows
    # Scripted: the next `count` API requests whose path starts with `path` get `status`.
    scripted: deque[dict[str, Any]] = field(default_factory=deque)


@dataclass
class EmulatorConfig:
    rate_limit_per_minute: int = 120
    customers_limit: int = 500  # per 10 minutes (reference §4)
    client_id: str = "local-salla-client"
    client_secret: str = "local-salla-secret"  # noqa: S105 - a test double's fixed credential
    seed: int = 1


@dataclass
class EmulatorState:
    config: EmulatorConfig = field(default_factory=EmulatorConfig)
    faults: Faults = field(default_factory=Faults)
    stores: dict[int, EmulatedStore] = field(default_factory=dict)
    buckets: dict[tuple[int, str], LeakyBucket] = field(default_factory=dict)
    used_refresh_tokens: dict[str, int] = field(default_factory=dict)
    stats: Counter[str] = field(default_factory=Counter)
    first_request_at: float | None = None
    last_request_at: float | None = None
    random: random.Random = field(default_factory=lambda: random.Random(1))

    def add_store(self, store: EmulatedStore) -> None:
        self.stores[store.merchant_id] = store

    def merchant_for(self, access_token: str) -> EmulatedStore | None:
        for store in self.stores.values():
            if secrets.compare_digest(store.tokens.access_token, access_token):
                return store
        return None

    def bucket(self, merchant_id: int, kind: str) -> LeakyBucket:
        key = (merchant_id, kind)
        if key not in self.buckets:
            if kind == "customers":
                self.buckets[key] = LeakyBucket(self.config.customers_limit, period=600.0)
            else:
                self.buckets[key] = LeakyBucket(self.config.rate_limit_per_minute)
        return self.buckets[key]

    def reset_stats(self) -> None:
        self.stats.clear()
        self.first_request_at = self.last_request_at = None


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"status": status, "success": False, "error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _ok(data: Any, headers: dict[str, str], pagination: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"status": 200, "success": True, "data": data}
    if pagination is not None:
        body["pagination"] = pagination
    return JSONResponse(body, headers=headers)


def create_emulator_app(state: EmulatorState | None = None) -> Starlette:
    state = state or EmulatorState()

    async def guard(request: Request, kind: str) -> tuple[EmulatedStore | None, Response | dict]:
        """Auth, rate limit and faults, in Salla's order. Returns (store, headers) or an error."""
        now = time.time()
        state.stats["requests"] += 1
        state.stats[f"requests:{kind}"] += 1
        state.first_request_at = state.first_request_at or now
        state.last_request_at = now
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        store = state.merchant_for(token) if token else None
        if store is None or store.tokens.revoked:
            state.stats["401"] += 1
            return None, _error(401, "Unauthorized", "The access token is invalid")
        if store.tokens.expires_at <= now:
            state.stats["401"] += 1
            return None, _error(401, "Unauthorized", "The access token has expired")
        admitted, headers = state.bucket(store.merchant_id, "general").take(now)
        if admitted and kind == "customers":
            admitted, extra = state.bucket(store.merchant_id, "customers").take(now)
            if not admitted:
                headers["Retry-After"] = extra["Retry-After"]
        if not admitted:
            state.stats["429"] += 1
            return None, _error(429, "too_many_requests", "Too Many Requests", headers)
        faults = state.faults
        script = next((s for s in faults.scripted if request.url.path.startswith(s["path"])), None)
        if script is not None:
            script["count"] -= 1
            if script["count"] <= 0:
                faults.scripted.remove(script)
            state.stats[str(script["status"])] += 1
            extra_headers = dict(headers)
            if script.get("retry_after") is not None:
                extra_headers["Retry-After"] = str(script["retry_after"])
            return None, _error(script["status"], "scripted", "Scripted fault", extra_headers)
        roll = state.random.random()
        if roll < faults.timeout_rate:
            state.stats["timeouts"] += 1
            await asyncio.sleep(faults.hang_seconds)
        elif roll < faults.timeout_rate + faults.error_rate:
            status = state.random.choice((500, 502, 503))
            state.stats[str(status)] += 1
            return None, _error(status, "server_error", "Internal Server Error")
        return store, headers

    def empty_page_fault() -> bool:
        if state.random.random() < state.faults.empty_page_rate:
            state.stats["empty_pages"] += 1
            return True
        return False

    async def list_orders(request: Request) -> Response:
        store, headers = await guard(request, "orders.list")
        if store is None:
            return headers  # type: ignore[return-value]
        query = request.query_params
        try:
            page = int(query.get("page", "1"))
            per_page = int(query.get("per_page", "15"))
            start = date.fromisoformat(query["from_date"]) if "from_date" in query else None
            end = date.fromisoformat(query["to_date"]) if "to_date" in query else None
        except ValueError as error:
            return _error(422, "validation_failed", f"invalid query: {error}")
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            return _error(422, "validation_failed", "page >= 1 and 1 <= per_page <= 60")
        ids = [
            i
            for i in store.order_ids_by_date
            if (start is None or store.local_date(i) >= start)
            and (end is None or store.local_date(i) <= end)
        ]
        total_pages = max(1, -(-len(ids) // per_page))
        rows = [store.order_summary(i) for i in ids[(page - 1) * per_page : page * per_page]]
        if rows and empty_page_fault():
            rows = []
        style = LINK_STYLES[page % len(LINK_STYLES)]
        links: Any = {} if style == "empty_object" else [] if style == "empty_list" else {}
        if style == "next" and page < total_pages:
            links = {"next": str(request.url.include_query_params(page=page + 1))}
        pagination = {
            "count": len(rows),
            "total": len(ids),
            "perPage": per_page,
            "currentPage": page,
            "totalPages": total_pages,
            "links": links,
        }
        return _ok(rows, headers, pagination)  # type: ignore[arg-type]

    async def order_detail(request: Request) -> Response:
        store, headers = await guard(request, "orders.detail")
        if store is None:
            return headers  # type: ignore[return-value]
        order_id = int(request.path_params["order_id"])
        if order_id not in store.orders:
            return _error(404, "not_found", "The order was not found")
        return _ok(store.order_detail(order_id), headers)  # type: ignore[arg-type]

    async def list_products(request: Request) -> Response:
        store, headers = await guard(request, "products")
        if store is None:
            return headers  # type: ignore[return-value]
        page = int(request.query_params.get("page", "1"))
        per_page = min(MAX_PER_PAGE, int(request.query_params.get("per_page", "15")))
        products = store.products
        total_pages = max(1, -(-len(products) // per_page))
        rows = products[(page - 1) * per_page : page * per_page]
        if rows and empty_page_fault():
            rows = []
        pagination = {
            "count": len(rows),
            "total": len(products),
            "perPage": per_page,
            "currentPage": page,
            "totalPages": total_pages,
            "links": [],
        }
        return _ok(rows, headers, pagination)  # type: ignore[arg-type]

    async def list_customers(request: Request) -> Response:
        """The newer `{count, current, next}` block: an opaque cursor in the next URL."""
        store, headers = await guard(request, "customers")
        if store is None:
            return headers  # type: ignore[return-value]
        offset = int(request.query_params.get("cursor", "0"))
        per_page = min(MAX_PER_PAGE, int(request.query_params.get("per_page", "15")))
        customers = store.customers
        rows = customers[offset : offset + per_page]
        if rows and empty_page_fault():
            rows = []
        following = offset + per_page
        next_url = (
            f"{request.url.scheme}://{request.url.netloc}{request.url.path}?"
            + urlencode({"cursor": following, "per_page": per_page})
            if following < len(customers)
            else None
        )
        pagination = {"count": len(rows), "current": offset // per_page + 1, "next": next_url}
        return _ok(rows, headers, pagination)  # type: ignore[arg-type]

    async def oauth_token(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))  # form-encoded, like Salla's
        state.stats["requests:oauth"] += 1
        if form.get("grant_type") != "refresh_token":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        client_ok = secrets.compare_digest(
            str(form.get("client_id", "")), state.config.client_id
        ) and secrets.compare_digest(str(form.get("client_secret", "")), state.config.client_secret)
        if not client_ok:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        presented = str(form.get("refresh_token", ""))
        if presented in state.used_refresh_tokens:
            # Reuse: Salla revokes both tokens; the merchant must reinstall (reference §3.1).
            state.stats["refresh_reused"] += 1
            store = state.stores.get(state.used_refresh_tokens[presented])
            if store is not None:
                store.tokens.revoked = True
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        store = next(
            (
                s
                for s in state.stores.values()
                if secrets.compare_digest(s.tokens.refresh_token, presented)
            ),
            None,
        )
        if store is None or store.tokens.revoked:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        state.used_refresh_tokens[presented] = store.merchant_id
        state.stats["refreshes"] += 1
        store.tokens = new_tokens()
        script = next((f for f in state.faults.scripted if f["path"] == "/oauth2/token"), None)
        if script is not None:
            # Salla has rotated the tokens; the answer is what goes wrong (tests of the
            # write-ahead): a body that is not the documented shape, or no answer in time.
            script["count"] -= 1
            if script["count"] <= 0:
                state.faults.scripted.remove(script)
            if script.get("answer") == "hang":
                await asyncio.sleep(state.faults.hang_seconds)
            else:
                renamed = {"token": store.tokens.access_token, "renew": store.tokens.refresh_token}
                return JSONResponse({"status": 200, "success": True, "data": renamed})
        return JSONResponse(
            {
                "access_token": store.tokens.access_token,
                "refresh_token": store.tokens.refresh_token,
                "expires_in": TOKEN_LIFETIME_SECONDS,
                "token_type": "bearer",
                "scope": "offline_access orders.read products.read customers.read",
            }
        )

    # -- control and inspection ----------------------------------------------------------------
    async def create_merchant(request: Request) -> Response:
        spec = await request.json()
        store = generate_store(
            int(spec["merchant_id"]),
            orders=int(spec.get("orders", 500)),
            seed=int(spec.get("seed", state.config.seed)),
            months=int(spec.get("months", 30)),
            products=int(spec.get("products", 75)),
        )
        state.add_store(store)
        return JSONResponse({"merchant_id": store.merchant_id, **token_document(store.tokens)})

    async def merchant_truth(request: Request) -> Response:
        store = state.stores.get(int(request.path_params["merchant_id"]))
        if store is None:
            return JSONResponse({"error": "unknown merchant"}, status_code=404)
        start = date.fromisoformat(request.query_params["from"])
        end = date.fromisoformat(request.query_params["to"])
        return JSONResponse(store.truth(start, end))

    async def merchant_tokens(request: Request) -> Response:
        store = state.stores.get(int(request.path_params["merchant_id"]))
        if store is None:
            return JSONResponse({"error": "unknown merchant"}, status_code=404)
        if request.method == "POST":  # expire the access token now (mid-job expiry)
            store.tokens.expires_at = time.time() - 1
        return JSONResponse(token_document(store.tokens))

    async def delete_order(request: Request) -> Response:
        """The merchant deletes an order: later list rows shift up one place."""
        store = state.stores[int(request.path_params["merchant_id"])]
        order_id = int(request.path_params["order_id"])
        if store.orders.pop(order_id, None) is not None:
            store.order_ids_by_date.remove(order_id)
        return JSONResponse({"deleted": order_id})

    async def delete_product(request: Request) -> Response:
        """The merchant deletes a product: later list rows shift up one place."""
        store = state.stores[int(request.path_params["merchant_id"])]
        product_id = int(request.path_params["product_id"])
        store.deleted_products.add(product_id)
        return JSONResponse({"deleted": product_id})

    async def delete_customer(request: Request) -> Response:
        """The merchant deletes a customer: later cursor pages shift up one place (the cursor
        is an offset in disguise, as Salla's `next` URLs may well be)."""
        store = state.stores[int(request.path_params["merchant_id"])]
        customer_id = int(request.path_params["customer_id"])
        store.deleted_customers.add(customer_id)
        return JSONResponse({"deleted": customer_id})

    async def order_status(request: Request) -> Response:
        store = state.stores[int(request.path_params["merchant_id"])]
        slug = (await request.json())["slug"]
        return JSONResponse(store.set_status(int(request.path_params["order_id"]), slug))

    async def configure(request: Request) -> Response:
        changes = await request.json()
        for name in ("rate_limit_per_minute", "customers_limit"):
            if name in changes:
                setattr(state.config, name, int(changes[name]))
                state.buckets.clear()
        for name in ("error_rate", "timeout_rate", "hang_seconds", "empty_page_rate"):
            if name in changes:
                setattr(state.faults, name, float(changes[name]))
        if "seed" in changes:
            state.random.seed(int(changes["seed"]))
        return JSONResponse({"config": state.config.__dict__, "faults": fault_document()})

    async def add_fault(request: Request) -> Response:
        spec = await request.json()
        state.faults.scripted.append(
            {
                "path": spec.get("path", "/admin/v2/"),
                "status": int(spec["status"]),
                "count": int(spec.get("count", 1)),
                "retry_after": spec.get("retry_after"),
                "answer": spec.get("answer"),  # /oauth2/token: "unreadable" or "hang"
            }
        )
        return JSONResponse({"faults": fault_document()})

    async def stats(request: Request) -> Response:
        if request.method == "DELETE":
            state.reset_stats()
        elapsed = (
            state.last_request_at - state.first_request_at
            if state.first_request_at and state.last_request_at
            else 0.0
        )
        return JSONResponse(
            {
                "counts": dict(state.stats),
                "elapsed_seconds": elapsed,
                "rate_limit_per_minute": state.config.rate_limit_per_minute,
            }
        )

    def fault_document() -> dict[str, Any]:
        faults = state.faults
        return {
            "error_rate": faults.error_rate,
            "timeout_rate": faults.timeout_rate,
            "hang_seconds": faults.hang_seconds,
            "empty_page_rate": faults.empty_page_rate,
            "scripted": list(faults.scripted),
        }

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "merchants": sorted(state.stores)})

    app = Starlette(
        routes=[
            Route("/admin/v2/orders", list_orders),
            Route("/admin/v2/orders/{order_id:int}", order_detail),
            Route("/admin/v2/products", list_products),
            Route("/admin/v2/customers", list_customers),
            Route("/oauth2/token", oauth_token, methods=["POST"]),
            Route("/_emulator/merchants", create_merchant, methods=["POST"]),
            Route("/_emulator/merchants/{merchant_id:int}/truth", merchant_truth),
            Route(
                "/_emulator/merchants/{merchant_id:int}/tokens",
                merchant_tokens,
                methods=["GET", "POST"],
            ),
            Route(
                "/_emulator/merchants/{merchant_id:int}/orders/{order_id:int}/status",
                order_status,
                methods=["POST"],
            ),
            Route(
                "/_emulator/merchants/{merchant_id:int}/orders/{order_id:int}",
                delete_order,
                methods=["DELETE"],
            ),
            Route(
                "/_emulator/merchants/{merchant_id:int}/products/{product_id:int}",
                delete_product,
                methods=["DELETE"],
            ),
            Route(
                "/_emulator/merchants/{merchant_id:int}/customers/{customer_id:int}",
                delete_customer,
                methods=["DELETE"],
            ),
            Route("/_emulator/config", configure, methods=["PUT"]),
            Route("/_emulator/faults", add_fault, methods=["POST"]),
            Route("/_emulator/stats", stats, methods=["GET", "DELETE"]),
            Route("/healthz", health),
        ]
    )
    app.state.emulator = state
    return app


def new_tokens() -> MerchantTokens:
    return MerchantTokens(
        access_token="at_" + secrets.token_urlsafe(24),
        refresh_token="rt_" + secrets.token_urlsafe(24),
        expires_at=time.time() + TOKEN_LIFETIME_SECONDS,
    )


def token_document(tokens: MerchantTokens) -> dict[str, Any]:
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_at": tokens.expires_at,
        "expires_at_iso": datetime.fromtimestamp(tokens.expires_at, RIYADH).isoformat(),
        "revoked": tokens.revoked,
    }
