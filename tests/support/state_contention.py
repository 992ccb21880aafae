"""A worker process for the SQLite state store's cross-process contention test.

Several processes open the same database file (as the dev stack's service, the CLI and a second
worker would) and race on the store's atomic steps. Run with the `spawn` start method."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path


def contend(path: str, worker: int, start_at: float, keys: int, rounds: int) -> dict[str, int]:
    return asyncio.run(_contend(Path(path), worker, start_at, keys, rounds))


async def _contend(path: Path, worker: int, start_at: float, keys: int, rounds: int) -> dict:
    from data_pipeline.adapters.sqlite_state import SqliteStateStore
    from data_pipeline.adapters.state import Verdict

    store = SqliteStateStore(path)
    await asyncio.sleep(max(0.0, start_at - time.time()))  # everyone starts together
    firsts = 0
    for key in range(keys):
        verdict = await store.settle(f"event-{key}", f"message-{worker}", "loaded")
        firsts += verdict is Verdict.FIRST
    saved = 0
    for _ in range(rounds):
        job = await store.get_job("job-contended")
        assert job is not None
        expected = job.seq
        job.seq += 1
        saved += await store.save_job(job, expected_seq=expected)
    held = 0
    for attempt in range(rounds):
        owner = f"worker-{worker}-{attempt}"
        if not await store.acquire_lock("contended", owner, 5.0):
            await asyncio.sleep(0.001)
            continue
        # A read-modify-write in two transactions: only the lease keeps increments from being
        # lost between processes.
        current = int((await store.get_record("counter")) or b"0")
        await asyncio.sleep(0.0005)
        await store.put_record("counter", str(current + 1).encode(), 60)
        await store.release_lock("contended", owner)
        held += 1
    await store.close()
    return {"firsts": firsts, "saved": saved, "held": held}
