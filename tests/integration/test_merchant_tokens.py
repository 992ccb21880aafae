"""Token refresh and the shared request budget, on both state stores (SQLite and redis-server),
against the emulator's single-use refresh tokens."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
import pytest_asyncio
from data_pipeline.adapters.salla_oauth import RefreshRejected, SallaOAuth
from data_pipeline.adapters.state import EncryptedTokens
from data_pipeline.adapters.token_cipher import TokenCipher
from data_pipeline.devtools.salla_emulator.client import EmulatorClient
from data_pipeline.service_layer.merchant_tokens import MerchantNotAuthorized, TokenProvider
from data_pipeline.service_layer.salla_budget import BudgetDeferred, RequestBudget

from tests.support.salla import CLIENT_ID, CLIENT_SECRET, start_emulator

MERCHANT = 9_200_001


@pytest_asyncio.fixture
async def emulator():
    server, _ = await start_emulator()
    client = EmulatorClient(server.url)
    yield client
    await client.aclose()
    await server.stop()


async def _authorize(store, cipher, tokens, *, expires_at=None):
    await store.set_installed(MERCHANT, True, version=1)
    await store.set_tokens(
        MERCHANT,
        EncryptedTokens(
            cipher.encrypt(tokens["access_token"]),
            cipher.encrypt(tokens["refresh_token"]),
            expires_at if expires_at is not None else tokens["expires_at"],
            "orders.read",
        ),
        version=2,
    )


async def test_concurrent_401s_on_two_instances_refresh_exactly_once(store, emulator):
    tokens = await emulator.create_merchant(MERCHANT, orders=10)
    cipher = TokenCipher(TokenCipher.generate_key())
    await _authorize(store, cipher, tokens)
    oauth = [SallaOAuth(emulator.token_url, CLIENT_ID, CLIENT_SECRET) for _ in range(2)]
    # Two function instances, each with many workers that all just got a 401 on the old token.
    providers = [TokenProvider(store, cipher, o) for o in oauth]
    stale = await providers[0].current(MERCHANT)
    results = await asyncio.gather(
        *(providers[i % 2].refresh(MERCHANT, stale=stale) for i in range(24))
    )
    stats = (await emulator.stats())["counts"]
    assert stats["refreshes"] == 1 and "refresh_reused" not in stats
    assert len({r.value for r in results}) == 1 and results[0].value != stale.value
    assert sum(p.refreshes for p in providers) == 1
    current = await emulator.tokens(MERCHANT)
    record = await store.get_merchant(MERCHANT)
    assert cipher.decrypt(record.access_token) == current["access_token"]
    assert cipher.decrypt(record.refresh_token) == current["refresh_token"]  # both stored
    assert record.token_version > 2
    for o in oauth:
        await o.aclose()


async def test_a_token_expiring_within_a_day_is_refreshed_before_use(store, emulator):
    tokens = await emulator.create_merchant(MERCHANT, orders=10)
    cipher = TokenCipher(TokenCipher.generate_key())
    await _authorize(store, cipher, tokens, expires_at=time.time() + 3600)
    oauth = SallaOAuth(emulator.token_url, CLIENT_ID, CLIENT_SECRET)
    provider = TokenProvider(store, cipher, oauth)
    token = await provider.current(MERCHANT)
    assert (
        token.value == (await emulator.tokens(MERCHANT))["access_token"] != tokens["access_token"]
    )
    assert (await provider.current(MERCHANT)).value == token.value  # now valid for 14 days
    assert provider.refreshes == 1
    await oauth.aclose()


async def test_refresh_failures_and_missing_authorization_are_explained(store, emulator):
    cipher = TokenCipher(TokenCipher.generate_key())
    oauth = SallaOAuth(emulator.token_url, CLIENT_ID, CLIENT_SECRET)
    provider = TokenProvider(store, cipher, oauth)
    with pytest.raises(MerchantNotAuthorized, match="has not authorized"):
        await provider.current(MERCHANT)
    tokens = await emulator.create_merchant(MERCHANT, orders=10)
    await _authorize(store, cipher, {**tokens, "refresh_token": "rt_forged"})
    stale = await provider.current(MERCHANT)
    with pytest.raises(RefreshRejected, match="re-authorize"):
        await provider.refresh(MERCHANT, stale=stale)
    await store.set_installed(MERCHANT, False, version=3)
    with pytest.raises(MerchantNotAuthorized, match="uninstalled"):
        await provider.current(MERCHANT)
    await oauth.aclose()


async def test_the_budget_spaces_requests_across_workers_and_defers_beyond_the_deadline(store):
    budgets = [RequestBudget(store, MERCHANT, limit_per_minute=600) for _ in range(2)]
    interval, burst = budgets[0].interval, budgets[0].burst
    waits = [await store.reserve_slot(f"salla:{MERCHANT}", interval, burst, 60) for _ in range(30)]
    # GCRA: `burst` requests at once, then one per interval, shared by every caller.
    assert waits[:burst] == [0.0] * burst
    gaps = [b - a for a, b in itertools.pairwise(waits[burst:])]
    assert all(abs(gap - interval) < 0.02 for gap in gaps)
    with pytest.raises(BudgetDeferred) as deferred:
        await budgets[1].acquire(customers=False, deadline=time.monotonic() + 0.5)
    assert deferred.value.wait_seconds > 0.5
    await budgets[0].hold(120)
    with pytest.raises(BudgetDeferred) as held:
        await budgets[1].acquire(customers=False, deadline=time.monotonic() + 60)
    assert held.value.wait_seconds > 100
