"""SallaGateway and SallaOAuth against the Admin API emulator over real HTTP."""

from __future__ import annotations

import asyncio
import time
from datetime import date, timedelta

import pytest
import pytest_asyncio
from data_pipeline.adapters.salla_api import (
    SallaGateway,
    SallaNotFound,
    SallaRateLimited,
    SallaRejected,
    SallaUnauthorized,
    SallaUnavailable,
)
from data_pipeline.adapters.salla_oauth import RefreshRejected, SallaOAuth
from data_pipeline.devtools.salla_emulator.client import EmulatorClient

from tests.support.salla import CLIENT_ID, CLIENT_SECRET, start_emulator

MERCHANT = 9_100_001


@pytest_asyncio.fixture
async def salla():
    server, state = await start_emulator(rate_limit_per_minute=60_000)
    client = EmulatorClient(server.url)
    tokens = await client.create_merchant(MERCHANT, orders=300, seed=2)
    gateway = SallaGateway(client.api_base_url, timeout=1.0)
    yield gateway, client, state, tokens
    await gateway.aclose()
    await client.aclose()
    await server.stop()


async def test_order_pages_cover_the_window_once(salla):
    gateway, _, _, tokens = salla
    start, end = date.today() - timedelta(days=200), date.today()
    seen, params = [], {}
    while True:
        page = await gateway.list_orders(
            tokens["access_token"], start=start, end=end, params=params
        )
        seen.extend(row["id"] for row in page.rows)
        if page.next_params is None:
            break
        params = page.next_params
    assert len(seen) == len(set(seen)) == page.total
    detail, rate = await gateway.order(tokens["access_token"], seen[0])
    assert detail["id"] == seen[0] and detail["items"] and detail["amounts"]["total"]
    assert rate.limit == 60_000 and rate.remaining is not None


async def test_customers_use_the_cursor_variant_and_products_page_numbers(salla):
    gateway, _, state, tokens = salla
    store = state.stores[MERCHANT]
    customers, params = [], {}
    while True:
        page = await gateway.list_customers(tokens["access_token"], params)
        customers.extend(page.rows)
        if page.next_params is None:
            break
        assert "cursor" in page.next_params
        params = page.next_params
    assert len(customers) == len(store.customers)
    products = await gateway.list_products(tokens["access_token"], {})
    assert products.next_params == {"page": "2"} and products.total == len(store.products)


async def test_failures_become_the_exceptions_the_orchestrator_acts_on(salla):
    gateway, client, _, tokens = salla
    token = tokens["access_token"]
    with pytest.raises(SallaUnauthorized):
        await gateway.list_products("not-a-token", {})
    with pytest.raises(SallaNotFound):
        await gateway.order(token, 1)
    await client.fault(429, retry_after=17)
    with pytest.raises(SallaRateLimited) as limited:
        await gateway.list_products(token, {})
    assert limited.value.retry_after == 17
    await client.fault(503)
    with pytest.raises(SallaUnavailable):
        await gateway.list_products(token, {})
    await client.fault(403)  # a plain 403 (a missing scope) is not retried
    with pytest.raises(SallaRejected):
        await gateway.list_products(token, {})
    with pytest.raises(SallaRejected):  # a validation error (422) is not retried either
        await gateway.list_orders(token, start=date.today(), end=date.today(), params={"page": "0"})
    await client.configure(timeout_rate=1.0, hang_seconds=3)
    with pytest.raises(SallaUnavailable, match="timed out"):
        await gateway.list_products(token, {})
    await client.configure(timeout_rate=0.0)
    await client.expire_token(MERCHANT)
    with pytest.raises(SallaUnauthorized):
        await gateway.list_products(token, {})


async def test_the_leaky_bucket_answers_429_with_retry_after(salla):
    _, client, _, tokens = salla
    gateway = SallaGateway(client.api_base_url, timeout=30.0)  # a busy box: no timeouts here
    await client.configure(rate_limit_per_minute=30)
    started = time.monotonic()
    results = await asyncio.gather(
        *(gateway.list_products(tokens["access_token"], {}) for _ in range(40)),
        return_exceptions=True,
    )
    elapsed = time.monotonic() - started
    await gateway.aclose()
    limited = [r for r in results if isinstance(r, SallaRateLimited)]
    answered = [r for r in results if not isinstance(r, BaseException)]
    assert len(answered) + len(limited) == 40, results  # nothing else went wrong
    # A bucket of 30 leaking 0.5 per second: 30 pass at once, one more per 2 s the burst took.
    assert 30 <= len(answered) <= 30 + int(elapsed * 0.5) + 1
    assert limited
    assert all(1 <= r.retry_after <= 3 for r in limited)
    assert all(r.rate.limit == 30 and r.rate.remaining == 0 for r in limited)


async def test_refresh_tokens_are_single_use_and_reuse_revokes(salla):
    gateway, client, _, tokens = salla
    oauth = SallaOAuth(client.token_url, CLIENT_ID, CLIENT_SECRET)
    try:
        issued = await oauth.refresh(tokens["refresh_token"])
        assert issued.access_token != tokens["access_token"]
        assert (await gateway.list_products(issued.access_token, {})).rows
        with pytest.raises(RefreshRejected, match="re-authorize"):
            await oauth.refresh(tokens["refresh_token"])  # reused: Salla revokes everything
        with pytest.raises(SallaUnauthorized):
            await gateway.list_products(issued.access_token, {})
        wrong_client = SallaOAuth(client.token_url, CLIENT_ID, "wrong-secret")
        with pytest.raises(RefreshRejected):
            await wrong_client.refresh(issued.refresh_token)
        await wrong_client.aclose()
        unconfigured = SallaOAuth(client.token_url, "", "")
        with pytest.raises(RefreshRejected, match="SALLA_CLIENT_ID"):
            await unconfigured.refresh("x")
        await unconfigured.aclose()
    finally:
        await oauth.aclose()
