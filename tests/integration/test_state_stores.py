"""One contract for both state stores: embedded SQLite and a real redis-server."""

import asyncio

import pytest
from data_pipeline.adapters.redis_state import RedisStateStore
from data_pipeline.adapters.sqlite_state import SqliteStateStore
from data_pipeline.adapters.state import EncryptedTokens, Verdict
from data_pipeline.errors import TransientError

from tests.support.redis_server import free_port


async def test_settlement_verdicts(store):
    assert await store.settle("e1", "m1", "loaded") is Verdict.FIRST
    assert await store.settle("e1", "m1", "loaded") is Verdict.REDELIVERY
    assert await store.settle("e1", "m2", "loaded") is Verdict.DUPLICATE
    assert await store.settle("e2", "m3", "dead_lettered") is Verdict.FIRST
    assert await store.settle("e2", "m4", "loaded") is Verdict.RECOVERED
    assert await store.settle("e2", "m5", "loaded") is Verdict.DUPLICATE


async def test_settling_many_applies_the_same_rule_in_order(store):
    await store.settle("seen", "m0", "dead_lettered")
    verdicts = await store.settle_many(
        [
            ("new", "m1", "loaded"),
            ("new", "m1", "loaded"),  # the same message again, in the same batch
            ("new", "m2", "loaded"),
            ("seen", "m3", "loaded"),
            *((f"bulk{i}", f"b{i}", "ignored") for i in range(1500)),  # past one pipeline
        ]
    )
    assert verdicts[:4] == [
        Verdict.FIRST,
        Verdict.REDELIVERY,
        Verdict.DUPLICATE,
        Verdict.RECOVERED,
    ]
    assert verdicts[4:] == [Verdict.FIRST] * 1500
    assert await store.settle("bulk1499", "other", "loaded") is Verdict.DUPLICATE


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


def new_job(merchant=5, job_id="job-1"):
    from data_pipeline.domain.sync import SyncJob

    return SyncJob(
        job_id=job_id,
        merchant_id=merchant,
        depth="12m",
        window_start="2025-11-22",
        window_end="2026-11-22",
    )


async def test_one_active_job_per_merchant(store):
    from data_pipeline.domain.sync import JobStatus

    first, created = await store.create_job_unless_active(new_job())
    assert created
    second, created_again = await store.create_job_unless_active(new_job(job_id="job-2"))
    assert not created_again and second.job_id == "job-1"
    first.status, first.seq = JobStatus.COMPLETED, 1
    assert await store.save_job(first, expected_seq=0)
    _, created = await store.create_job_unless_active(new_job(job_id="job-3"))
    assert created and (await store.latest_job(5)).job_id == "job-3"
    assert (await store.get_job("job-1")).status is JobStatus.COMPLETED


async def test_saving_a_job_is_compare_and_set_on_its_step(store):
    job, _ = await store.create_job_unless_active(new_job(merchant=6))
    job.seq = 1
    results = await asyncio.gather(*(store.save_job(job, expected_seq=0) for _ in range(10)))
    assert results.count(True) == 1
    job.seq = 2
    assert not await store.save_job(job, expected_seq=0)
    assert await store.save_job(job, expected_seq=1)
    assert (await store.get_job(job.job_id)).seq == 2


async def test_leases_are_exclusive_until_released_or_expired(store):
    assert await store.acquire_lock("refresh:1", "a", ttl_seconds=0.3)
    assert not await store.acquire_lock("refresh:1", "b", ttl_seconds=5)
    await store.release_lock("refresh:1", "b")  # not b's: nothing happens
    assert not await store.acquire_lock("refresh:1", "b", ttl_seconds=5)
    await asyncio.sleep(0.35)
    assert await store.acquire_lock("refresh:1", "b", ttl_seconds=5)
    await store.release_lock("refresh:1", "b")
    assert await store.acquire_lock("refresh:1", "c", ttl_seconds=5)


async def test_reserved_slots_pace_requests_and_holds_block_them(store):
    key = f"slots-{id(store)}"
    waits = [await store.reserve_slot(key, 0.5, burst=2, max_wait_seconds=10) for _ in range(4)]
    assert waits[0] == 0 and waits[1] == 0  # the burst
    assert 0.3 < waits[2] <= 0.5 and 0.8 < waits[3] <= 1.0
    # A slot beyond max_wait is not reserved: asking again gives the same answer.
    far = await store.reserve_slot(key, 0.5, burst=2, max_wait_seconds=0.1)
    assert far > 0.1
    assert abs(await store.reserve_slot(key, 0.5, burst=2, max_wait_seconds=0.1) - far) < 0.05
    await store.hold_slots(key, 30)
    assert 29 < await store.reserve_slot(key, 0.5, burst=2, max_wait_seconds=100) <= 30


async def test_a_hold_follows_the_stores_clock_not_a_skewed_callers(store, monkeypatch):
    """Function instances' clocks drift; reserve_slot uses the store's clock (Redis TIME), so
    a hold must too, or an instance an hour ahead would block Salla calls for an hour."""
    import time

    key = f"skew-{id(store)}"
    skewed = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: skewed)
    await store.hold_slots(key, 30)
    monkeypatch.undo()
    wait = await store.reserve_slot(key, 0.5, burst=2, max_wait_seconds=5000)
    # SQLite's clock is the process's own: skewed for both calls there, so it cannot differ.
    assert 29 < wait <= 30 or (isinstance(store, SqliteStateStore) and wait > 3600)


def test_the_sqlite_store_is_atomic_across_processes(tmp_path):
    """Four processes on one database file race on settlements, job compare-and-set and a
    lease guarding a two-step read-modify-write; nothing is counted twice or lost."""
    import multiprocessing
    import time
    from concurrent.futures import ProcessPoolExecutor

    from data_pipeline.domain.sync import SyncJob

    from tests.support.state_contention import contend

    path = tmp_path / "state.sqlite3"
    store = SqliteStateStore(path)
    job = SyncJob("job-contended", 1, "12m", "2025-01-01", "2026-01-01")
    asyncio.run(store.create_job_unless_active(job))
    asyncio.run(store.close())
    workers, keys, rounds = 4, 300, 60
    start_at = time.time() + 3  # after every process has imported and opened the file
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(
            pool.map(
                contend,
                [str(path)] * workers,
                range(workers),
                [start_at] * workers,
                [keys] * workers,
                [rounds] * workers,
            )
        )
    store = SqliteStateStore(path)
    try:
        assert sum(r["firsts"] for r in results) == keys  # each event counted once
        final = asyncio.run(store.get_job("job-contended"))
        assert final.seq == sum(r["saved"] for r in results) > 0  # every CAS win, no lost one
        counter = int(asyncio.run(store.get_record("counter")))
        assert counter == sum(r["held"] for r in results) > workers  # the lease was exclusive
    finally:
        asyncio.run(store.close())


async def test_embedded_digests_are_recorded_per_namespace_and_forgotten_on_delete(store):
    assert await store.embedded_digests("merchant-1", []) == {}
    await store.record_embedded("merchant-1", {f"product:{i}": f"h{i}" for i in range(700)})
    await store.record_embedded("merchant-2", {"product:1": "other"})
    wanted = [f"product:{i}" for i in range(0, 800, 7)]  # some never embedded, > 500 ids
    found = await store.embedded_digests("merchant-1", wanted)
    assert found == {d: "h" + d.split(":")[1] for d in wanted if int(d.split(":")[1]) < 700}
    await store.record_embedded("merchant-1", {"product:1": "h1-new", "product:2": None})
    assert await store.embedded_digests("merchant-1", ["product:1", "product:2"]) == {
        "product:1": "h1-new"
    }
    assert await store.embedded_digests("merchant-2", ["product:1"]) == {"product:1": "other"}


async def test_replace_record_is_a_compare_and_set(store):
    assert await store.replace_record("cas", None, b"v1", 60)
    assert not await store.replace_record("cas", None, b"other", 60)  # no longer absent
    assert not await store.replace_record("cas", b"v0", b"other", 60)  # not what is stored
    assert await store.replace_record("cas", b"v1", b"v2", 60)
    assert await store.get_record("cas") == b"v2"
    assert not await store.replace_record("cas", b"", b"v3", 60)  # empty is not absent
    # many writers race from the same value: exactly one wins
    results = await asyncio.gather(
        *(store.replace_record("cas", b"v2", f"w{i}".encode(), 60) for i in range(20))
    )
    assert results.count(True) == 1
    assert await store.get_record("cas") == f"w{results.index(True)}".encode()


async def test_many_records_read_and_replaced_in_one_round_trip(store):
    keys = [f"batch:{i}" for i in range(600)]  # past SQLite's bound-parameter limit
    assert await store.get_records(keys) == {}
    results = await store.replace_records([(k, None, k.encode()) for k in keys], 60)
    assert all(results)
    assert await store.get_records([*keys[:3], "batch:absent"]) == {k: k.encode() for k in keys[:3]}
    mixed = [
        ("batch:0", b"batch:0", b"new"),
        ("batch:1", b"stale", b"new"),
        ("batch:2", None, b"x"),
    ]
    assert await store.replace_records(mixed, 60) == [True, False, False]
    assert (await store.get_records(["batch:0", "batch:1"])) == {
        "batch:0": b"new",
        "batch:1": b"batch:1",
    }
