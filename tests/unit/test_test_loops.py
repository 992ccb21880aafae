"""The test process keeps the event loops code under test leaves open (tests/conftest.py)."""

import asyncio
import gc
import weakref

from tests.conftest import LOOPS


def test_a_loop_left_open_is_kept_for_the_session_not_freed_inside_a_test():
    loop = asyncio.new_event_loop()  # as Mangum or Pulumi's mocks make one, never closed
    assert LOOPS.made[-1] is loop
    left = weakref.ref(loop)
    del loop
    gc.collect()
    assert left() is not None and not left().is_closed()  # closed when the session ends
