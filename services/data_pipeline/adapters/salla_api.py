"""SallaGateway: the Salla Admin API endpoints historical sync reads (httpx, async).

Answers are normalised here, at the edge: both pagination shapes (reference §3.2) become a
`Page` with the query parameters of the next page, `links` may be `{}`, `[]` or `{next}`, and
every failure becomes one of a few exception types the orchestrator acts on. The gateway sends
exactly one HTTP request per call (no hidden retries), so every request can be counted and
charged to the merchant's rate budget by the caller.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import orjson

from data_pipeline.errors import PermanentError, TransientError

MAX_PER_PAGE = 60


@dataclass(frozen=True, slots=True)
class RateInfo:
    """The X-RateLimit-* headers of one answer (None when absent)."""

    limit: int | None = None
    remaining: int | None = None
    reset_epoch: float | None = None
    retry_after: float | None = None

    def wait_seconds(self, now: float, default: float = 60.0) -> float:
        """How long a 429 asks us to wait: Retry-After, else the reset time, else `default`."""
        if self.retry_after is not None:
            return self.retry_after
        if self.reset_epoch is not None and self.reset_epoch > now:
            return self.reset_epoch - now
        return default


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[dict[str, Any]]
    next_params: dict[str, str] | None  # query parameters of the next page; None at the end
    total: int | None  # rows in the whole listing, when Salla says
    claims_more: bool  # pagination says pages remain (an empty page then is suspicious)
    rate: RateInfo


class SallaError(Exception):
    def __init__(self, message: str, *, rate: RateInfo | None = None) -> None:
        super().__init__(message)
        self.rate = rate or RateInfo()


class SallaUnauthorized(SallaError):
    """401: expired, revoked or invalid token, or a missing scope."""


class SallaRateLimited(SallaError, TransientError):
    """429 (or 403 'blocked'): wait `wait_seconds` before any further request."""

    def __init__(self, message: str, *, rate: RateInfo, wait_seconds: float) -> None:
        SallaError.__init__(self, message, rate=rate)
        self.retry_after = wait_seconds


class SallaUnavailable(SallaError, TransientError):
    """5xx, a timeout or a network failure: Salla may answer later."""


class SallaNotFound(SallaError):
    """404: the entity no longer exists (deleted between listing and fetching)."""


class SallaRejected(SallaError, PermanentError):
    """Another 4xx: the request itself is wrong; repeating it cannot help."""


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None  # type: ignore[arg-type]
    except ValueError:
        return None


def rate_info(headers: httpx.Headers) -> RateInfo:
    limit = _number(headers.get("x-ratelimit-limit"))
    remaining = _number(headers.get("x-ratelimit-remaining"))
    return RateInfo(
        limit=int(limit) if limit and limit > 0 else None,
        remaining=int(remaining) if remaining is not None and remaining >= 0 else None,
        reset_epoch=_number(headers.get("x-ratelimit-reset")),
        retry_after=_number(headers.get("retry-after")),
    )


def parse_page(document: dict[str, Any], rate: RateInfo) -> Page:
    """Both shapes: {currentPage,totalPages,links} and {count,current,next}; stop on no rows."""
    rows = document.get("data")
    if not isinstance(rows, list):
        raise SallaUnavailable("list answer without a data array", rate=rate)
    pagination = document.get("pagination")
    pagination = pagination if isinstance(pagination, dict) else {}
    next_params: dict[str, str] | None = None
    claims_more = False
    total = pagination.get("total")
    if "currentPage" in pagination or "totalPages" in pagination:
        current = int(pagination.get("currentPage") or 1)
        pages = int(pagination.get("totalPages") or current)
        claims_more = current < pages
        links = pagination.get("links")
        next_link = links.get("next") if isinstance(links, dict) else None
        if claims_more:
            next_params = _query_of(next_link) if next_link else {"page": str(current + 1)}
            next_params["page"] = str(current + 1)  # the link must not move us elsewhere
    elif pagination.get("next"):
        claims_more = True
        next_params = _query_of(str(pagination["next"]))
    if not rows:
        next_params = None  # an empty page ends the listing (the caller decides on `claims_more`)
    return Page(
        rows=rows,
        next_params=next_params,
        total=int(total) if isinstance(total, int | float) and total >= 0 else None,
        claims_more=claims_more,
        rate=rate,
    )


def _query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


class SallaGateway:
    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self._base = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=5.0),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            headers={"Accept": "application/json", "Accept-Language": "ar"},
        )

    @property
    def timeout(self) -> float:
        return float(self._http.timeout.read or 0)

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self._http.timeout = httpx.Timeout(seconds, connect=min(5.0, seconds))

    async def list_orders(
        self, token: str, *, start: date, end: date, params: dict[str, str], per_page: int = 60
    ) -> Page:
        """Orders created between `start` and `end` (the documented `from_date`/`to_date`)."""
        query = {
            "from_date": start.isoformat(),
            "to_date": end.isoformat(),
            "per_page": str(min(per_page, MAX_PER_PAGE)),
            **params,
        }
        return parse_page(*await self._get("/orders", token, query))

    async def order(self, token: str, order_id: int) -> tuple[dict[str, Any], RateInfo]:
        document, rate = await self._get(f"/orders/{order_id}", token, {})
        data = document.get("data")
        if not isinstance(data, dict):
            raise SallaUnavailable(f"order {order_id}: answer without a data object", rate=rate)
        return data, rate

    async def list_products(self, token: str, params: dict[str, str]) -> Page:
        query = {"per_page": str(MAX_PER_PAGE), **params}
        return parse_page(*await self._get("/products", token, query))

    async def list_customers(self, token: str, params: dict[str, str]) -> Page:
        query = {"per_page": str(MAX_PER_PAGE), **params}
        return parse_page(*await self._get("/customers", token, query))

    async def _get(
        self, path: str, token: str, query: dict[str, str]
    ) -> tuple[dict[str, Any], RateInfo]:
        try:
            response = await self._http.get(
                self._base + path, params=query, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.TimeoutException:
            raise SallaUnavailable(f"GET {path}: timed out") from None
        except httpx.HTTPError as error:
            raise SallaUnavailable(f"GET {path}: {type(error).__name__}") from None
        rate = rate_info(response.headers)
        status = response.status_code
        if status == 200:
            try:
                document = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise SallaUnavailable(f"GET {path}: answer is not JSON", rate=rate) from None
            if not isinstance(document, dict):
                raise SallaUnavailable(f"GET {path}: answer is not an object", rate=rate)
            return document, rate
        reason = _error_message(response)
        if status == 401:
            raise SallaUnauthorized(f"GET {path}: 401 {reason}", rate=rate)
        if status == 429:
            wait = rate.wait_seconds(time.time())
            raise SallaRateLimited(f"GET {path}: 429 {reason}", rate=rate, wait_seconds=wait)
        if status == 403 and "block" in reason.lower():
            # "blocked due to many errors": a temporary ban; back off well beyond a 429.
            wait = max(300.0, rate.wait_seconds(time.time(), default=300.0))
            raise SallaRateLimited(f"GET {path}: 403 {reason}", rate=rate, wait_seconds=wait)
        if status == 404:
            raise SallaNotFound(f"GET {path}: 404 {reason}", rate=rate)
        if status >= 500 or status == 408:
            raise SallaUnavailable(f"GET {path}: {status} {reason}", rate=rate)
        raise SallaRejected(f"GET {path}: {status} {reason}", rate=rate)

    async def aclose(self) -> None:
        await self._http.aclose()


def _error_message(response: httpx.Response) -> str:
    try:
        document = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.reason_phrase
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or "")[:200]
    if isinstance(error, str):
        return error[:200]
    return response.reason_phrase
