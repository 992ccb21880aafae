"""Token refresh and the shared request budget, on both state stores (SQLite and redis-server),
against the emulator's single-use refresh tokens."""

from __future__ import annotations

import asyncio
import itertools
import time

import orjson
import pytest
import pytest_asyncio
from data_pipeline.adapters.salla_oauth import RefreshAnswerUnreadable, RefreshRejected, SallaOAuth
from data_pipeline.adapters.state import EncryptedTokens
from data_pipeline.adapters.token_cipher import TokenCipher
from data_pipeline.devtools.salla_emulator.client import EmulatorClient
from data_pipeline.errors import TransientError
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


async def _authorized_provider(store, emulator, **oauth_options):
    """A merchant authorized in the emulator and our store, and a provider for its tokens."""
    tokens = await emulator.create_merchant(MERCHANT, orders=10)
    cipher = TokenCipher(TokenCipher.generate_key())
    await _authorize(store, cipher, tokens)
    oauth = SallaOAuth(emulator.token_url, CLIENT_ID, CLIENT_SECRET, **oauth_options)
    return TokenProvider(store, cipher, oauth), cipher, oauth


async def _usable(emulator, provider):
    """The provider's token is the one Salla now honours (and the merchant is not revoked)."""
    token = await provider.current(MERCHANT)
    current = await emulator.tokens(MERCHANT)
    return token.value == current["access_token"] and not current.get("revoked", False)


async def test_a_failed_token_write_after_salla_rotated_is_retried_then_applied_later(
    store, emulator, monkeypatch
):
    """Salla's refresh tokens are single-use and reuse revokes (reference §3.1): once Salla
    answered, its answer must survive a state store that fails to take the new tokens."""
    provider, cipher, oauth = await _authorized_provider(store, emulator)
    stale = await provider.current(MERCHANT)
    real_set_tokens, failures = store.set_tokens, []

    async def flaky(*args, **kwargs):
        if len(failures) < 2:  # a blip: the write is retried within the refresh
            failures.append(1)
            raise TransientError("state store blip")
        return await real_set_tokens(*args, **kwargs)

    monkeypatch.setattr(store, "set_tokens", flaky)
    await provider.refresh(MERCHANT, stale=stale)
    assert await _usable(emulator, provider) and len(failures) == 2

    # Now an outage longer than the retries: the refresh fails, the answer is kept.
    stale = await provider.current(MERCHANT)

    async def down(*args, **kwargs):
        raise TransientError("state store down")

    monkeypatch.setattr(store, "set_tokens", down)
    with pytest.raises(TransientError, match="down"):
        await provider.refresh(MERCHANT, stale=stale)
    monkeypatch.setattr(store, "set_tokens", real_set_tokens)
    # A fresh instance (another Lambda) applies the kept answer without spending anything.
    other = TokenProvider(store, cipher, SallaOAuth(emulator.token_url, CLIENT_ID, CLIENT_SECRET))
    await other.refresh(MERCHANT, stale=stale)
    stats = (await emulator.stats())["counts"]
    assert stats["refreshes"] == 2 and "refresh_reused" not in stats
    assert await _usable(emulator, other)
    assert await store.get_record(f"salla-refresh-answer:{MERCHANT}") is None  # applied, gone
    await oauth.aclose()


async def test_an_unreadable_200_answer_is_kept_and_never_spent_again(store, emulator, monkeypatch):
    provider, _, oauth = await _authorized_provider(store, emulator)
    stale = await provider.current(MERCHANT)
    await emulator.fault(200, path="/oauth2/token", answer="unreadable")
    for _ in range(3):  # retries (QStash's, a resumed job) must not spend the token again
        with pytest.raises(RefreshAnswerUnreadable):
            await provider.refresh(MERCHANT, stale=stale)
    stats = (await emulator.stats())["counts"]
    assert stats["refreshes"] == 1 and "refresh_reused" not in stats
    kept = await store.get_record(f"salla-refresh-answer:{MERCHANT}")
    assert kept is not None and b"token" not in kept  # encrypted at rest
    # A release that reads the new shape applies the kept answer: no re-authorization.
    from data_pipeline.adapters import salla_oauth
    from data_pipeline.service_layer import merchant_tokens

    def tolerant(raw, *, now):
        data = orjson.loads(raw)["data"]
        renamed = {"access_token": data["token"], "refresh_token": data["renew"]}
        return salla_oauth.parse_issued(renamed, now=now)

    monkeypatch.setattr(merchant_tokens, "parse_answer", tolerant)
    await provider.refresh(MERCHANT, stale=stale)
    assert await _usable(emulator, provider)
    assert (await emulator.stats())["counts"]["refreshes"] == 1
    await oauth.aclose()


async def test_an_answer_that_never_arrives_is_the_documented_loss(store, emulator):
    """Salla rotated, the connection died before its answer arrived: nothing was received, so
    nothing can be kept. The retry spends the old token again and Salla revokes; the merchant
    must re-authorize (docs/operations: the one unrecoverable refresh failure)."""
    provider, _, oauth = await _authorized_provider(store, emulator, timeout=0.5)
    stale = await provider.current(MERCHANT)
    await emulator.configure(hang_seconds=2)
    await emulator.fault(200, path="/oauth2/token", answer="hang")
    with pytest.raises(TransientError, match="Timeout"):
        await provider.refresh(MERCHANT, stale=stale)
    with pytest.raises(RefreshRejected, match="re-authorize"):
        await provider.refresh(MERCHANT, stale=stale)
    assert (await emulator.stats())["counts"]["refresh_reused"] == 1
    await oauth.aclose()
