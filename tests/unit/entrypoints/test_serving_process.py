"""A serving process keeps its start-up objects out of the cyclic GC once it is up."""

import asyncio
import gc
import os
import signal

from data_pipeline.entrypoints.cli.stack import _wait_for_signal


def test_waiting_for_the_stop_signal_freezes_what_start_up_made_then_returns_on_sigterm():
    gc.unfreeze()

    async def serve_then_stop() -> None:
        waiting = asyncio.create_task(_wait_for_signal())
        await asyncio.sleep(0.05)  # the handlers are installed and the heap frozen
        frozen = gc.get_freeze_count()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(waiting, 5)
        assert frozen > 0

    try:
        asyncio.run(serve_then_stop())
    finally:
        gc.unfreeze()  # this test process outlives the "server"
    assert gc.get_freeze_count() == 0
