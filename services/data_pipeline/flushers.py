"""Up to N tasks draining one in-memory queue: the group commits' (warehouse inserts, QStash
batch publishes, embedding requests) shared bookkeeping.

A caller appends to the queue, then calls `wake()`. A flusher loops until it sees the queue
empty. The running count is kept by the flushers themselves, in the same step as their last
look at the queue: a task's done callback runs one loop turn after it finished, and a caller
woken in that turn (typically the one whose rows ended the flush, loading again at once) would
count a flusher that no longer looks at the queue, skip starting one and wait forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Flushers:
    def __init__(self, drain: Callable[[], Awaitable[None]], *, limit: int) -> None:
        self._drain = drain
        self._limit = limit
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()  # strong references until done

    def wake(self) -> None:
        """Start a flusher unless `limit` are already draining the queue."""
        if self._running >= self._limit:
            return
        self._running += 1
        task = asyncio.create_task(self._run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self) -> None:
        """Until every flusher has stopped (the queue seen empty): used at shutdown."""
        # Finished tasks may still be in the set (their discard is a callback one turn away),
        # and gathering only finished tasks does not yield: wait for the unfinished ones.
        while running := [task for task in self._tasks if not task.done()]:
            await asyncio.gather(*running, return_exceptions=True)

    async def _run(self) -> None:
        try:
            await self._drain()
        finally:
            self._running -= 1  # no await since `drain` last saw the queue empty
