"""One contract for both state stores: embedded SQLite and a real redis-server."""

import asyncio

import pytest
import pytest_asyncio
from data_pipeline.adapters.redis_state import RedisStateStore
from data_pipeline.adapters.sqlite_state import SqliteStateStore
from data_pipeline.adapters.state import EncryptedTokens, Verdict
from data_pipeline.errors import TransientError

from tests.support.redis_server import free_port


@pytest_asyncio.fixture(params=["sqlite", "redis"])
async def store(request, tmp_path, redis_url):
    if request.param == "sqlite":
        state = SqliteStateStore(tmp_path / "state.sqlite3")
    else:
        state = RedisStateStore(redis_url, prefix=f"t{id(request)}")
    yield state
    await state.close()


async def test_settlement_verdicts(store):
    assert await store.settle("e1", "m1", "loaded") is Verdict.FIRST
    assert await store.settle("e1", "m1", "loaded") is Verdict.REDELIVERY
    assert await store.settle("e1", "m2", "loaded") is Verdict.DUPLICATE
    assert await store.settle("e2", "m3", "dead_lettered") is Verdict.FIRST
    assert await store.settle("e2", "m4", "loaded") is Verdict.RECOVERED
    assert await store.settle("e2", "m5", "loaded") is Verdict.DUPLICATE


async def test_concurrent_settlements_of_one_event_count_it_once(store):
    verdicts = await asyncio.gather(*(store.settle("same", f"m{i}", "loaded") for i in range(25)))
    assert verdicts.count(Verdict.FIRST) == 1
    assert verdicts.count(Verdict.DUPLICATE) == 24


async def test_merchant_changes_apply_only_when_newer(store):
    assert await store.get_merchant(9) is None
    assert await store.set_installed(9, True, version=100)
    assert not await store.set_installed(9, False, version=50)  # an old uninstall arriving late
    tokens = EncryptedTokens(b"enc-access", b"enc-refresh", 1_800_000_000.5, "orders.read")
    assert await store.set_tokens(9, tokens, version=2**61 + 7)
    older = EncryptedTokens(b"old", b"old", None, "")
    assert not await store.set_tokens(9, older, version=2**61 + 6)  # beyond double precision
    record = await store.get_merchant(9)
    assert record.installed and record.active
    assert (record.access_token, record.refresh_token) == (b"enc-access", b"enc-refresh")
    assert record.expires_at == 1_800_000_000.5 and record.token_version == 2**61 + 7
    assert await store.set_installed(9, False, version=2**61 + 8)
    assert not (await store.get_merchant(9)).active


async def test_an_unreachable_redis_is_a_transient_failure():
    store = RedisStateStore(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(TransientError, match="state store"):
        await store.settle("e", "m", "loaded")
    await store.close()
