"""Shared fixtures. One chDB engine serves the whole test process (chDB allows one data path per
process); tests isolate themselves with their own database in it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.support.harness import Harness, start_harness, stop_harness, warehouse_for
from tests.support.redis_server import redis_server

# The vendored qstash-py suite runs in its own pytest process (tests/compat/test_qstash_sdk.py).
collect_ignore = ["compat/qstash_sdk"]


class LoopKeepingPolicy(asyncio.DefaultEventLoopPolicy):
    """Keeps every event loop made in the test process until the session ends, then closes
    those still open. Code under test makes loops it never closes (Pulumi's mocks need a
    current one, tests/infra/stack_harness.py; Mangum makes one when none is current). Once
    another loop replaces it, such a loop is cyclic garbage, and when the collector frees it,
    its self-pipe socket may be finalized first: its own finalizer then fails (`Invalid file
    descriptor: -1`) inside whatever test is running, as an unraisable exception (it failed a
    test that calls `gc.collect()`)."""

    def __init__(self) -> None:
        super().__init__()
        self.made: list[asyncio.AbstractEventLoop] = []

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        self.made.append(loop)
        return loop

    def close_all(self) -> None:
        for loop in self.made:
            if not loop.is_closed() and not loop.is_running():
                loop.close()


LOOPS = LoopKeepingPolicy()
asyncio.set_event_loop_policy(LOOPS)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    LOOPS.close_all()


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb") / "clickhouse"


@pytest.fixture
def warehouse(chdb_path: Path):
    store = warehouse_for(chdb_path)
    yield store


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL 15 (wal_level=logical) per test module, started as this user."""
    from data_pipeline.devtools.local_postgres import postgres_server

    with postgres_server(tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest_asyncio.fixture(params=["sqlite", "redis"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str
) -> AsyncIterator[Any]:
    """Each state store in turn: embedded SQLite and a real redis-server (same contract)."""
    from data_pipeline.adapters.redis_state import RedisStateStore
    from data_pipeline.adapters.sqlite_state import SqliteStateStore

    if request.param == "sqlite":
        state: Any = SqliteStateStore(tmp_path / "state.sqlite3")
    else:
        state = RedisStateStore(redis_url, prefix=f"t{id(request)}")
    yield state
    await state.close()


@pytest_asyncio.fixture
async def harness(tmp_path: Path, chdb_path: Path) -> AsyncIterator[Harness]:
    running = await start_harness(tmp_path, chdb_path)
    try:
        yield running
    finally:
        await stop_harness(running)


@pytest_asyncio.fixture
async def harness_with(tmp_path: Path, chdb_path: Path) -> AsyncIterator[Any]:
    """A harness factory for tests that need other settings (retries, strategy, ...)."""
    started: list[Harness] = []

    async def start(**settings: Any) -> Harness:
        running = await start_harness(tmp_path / str(len(started)), chdb_path, **settings)
        started.append(running)
        return running

    yield start
    for running in started:
        await stop_harness(running)


@pytest_asyncio.fixture
async def sync_stack(harness_with: Any) -> AsyncIterator[Any]:
    """The harness wired to a Salla Admin API emulator (fast plan limit, fast backoff)."""
    from data_pipeline.devtools.salla_emulator.client import EmulatorClient

    from tests.support.salla import SyncStack, salla_settings, start_emulator

    server, state = await start_emulator()
    client = EmulatorClient(server.url)
    running = await harness_with(**salla_settings(server.url))
    running.container.sync.backoff = lambda failures: 0.2
    try:
        yield SyncStack(running, client, state)
    finally:
        running.dispatcher.pause()  # no more steps against an emulator that is going away
        await client.aclose()
        await server.stop()


@pytest_asyncio.fixture
async def rag_stack(harness_with: Any) -> AsyncIterator[Any]:
    """The harness with RAG on: local embeddings server, vectors in the warehouse."""
    from tests.support.embeddings import embeddings_server, rag_settings
    from tests.support.rag import RagStack

    async with embeddings_server() as (server, state):
        running = await harness_with(**rag_settings(server.url))
        yield RagStack(running, server.url, state)
