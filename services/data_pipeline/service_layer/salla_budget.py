"""A merchant's Salla request budget, shared by every worker through the state store.

Salla limits each store with a leaky bucket (reference §4): `X-RateLimit-Limit` requests a
minute, customers additionally 500 per 10 minutes. Every request first reserves a slot in a GCRA
schedule kept in Redis (one schedule per merchant, whatever the number of function instances),
so requests go out evenly at the allowed rate instead of bursting into 429s. A slot further away
than the step can wait is not taken: the step ends and is rescheduled with a QStash delay rather
than sleeping inside a function that is billed and time-limited.
"""

from __future__ import annotations

import asyncio
import time

from data_pipeline.adapters.salla_api import RateInfo
from data_pipeline.adapters.state import StateStore

CUSTOMERS_LIMIT, CUSTOMERS_PERIOD = 500, 600.0
# Salla's customers bucket holds 500 requests; a fifth of it may go at once (a store's customer
# list is rarely more than 100 pages), the rest at the sustained 1 per 1.2 s.
CUSTOMERS_BURST = 100
# Sustained rate as a share of the advertised one: headroom for clock skew between our schedule
# and Salla's bucket, so a full-speed backfill does not graze the limit.
RATE_SHARE = 0.97


class BudgetDeferred(Exception):
    """The next slot is `wait_seconds` away: more than this step may wait."""

    def __init__(self, wait_seconds: float) -> None:
        super().__init__(f"next Salla request slot in {wait_seconds:.1f}s")
        self.wait_seconds = wait_seconds


class RequestBudget:
    def __init__(self, state: StateStore, merchant_id: int, limit_per_minute: int) -> None:
        self._state = state
        self._key = f"salla:{merchant_id}"
        self.limit_per_minute = max(1, limit_per_minute)

    @property
    def interval(self) -> float:
        return 60.0 / (self.limit_per_minute * RATE_SHARE)

    @property
    def burst(self) -> int:
        # A few requests may go back to back (concurrent fetches); far below Salla's bucket size.
        return max(1, min(8, self.limit_per_minute // 30))

    async def acquire(self, *, customers: bool, deadline: float) -> None:
        """Wait for this request's slot, or raise BudgetDeferred if it is past `deadline`
        (a `time.monotonic()` instant)."""
        if customers:
            await self._take(
                f"{self._key}:customers",
                CUSTOMERS_PERIOD / (CUSTOMERS_LIMIT * RATE_SHARE),
                CUSTOMERS_BURST,
                deadline,
            )
        await self._take(self._key, self.interval, self.burst, deadline)

    async def _take(self, key: str, interval: float, burst: int, deadline: float) -> None:
        may_wait = max(0.0, deadline - time.monotonic())
        wait = await self._state.reserve_slot(key, interval, burst, may_wait)
        if wait > may_wait:
            raise BudgetDeferred(wait)
        if wait > 0:
            await asyncio.sleep(wait)

    async def observe(self, rate: RateInfo) -> None:
        """Follow what Salla says: its limit sizes the schedule, and a low remaining count
        (other apps sharing the store's budget) pauses everyone for the missing slots."""
        if rate.limit is not None:
            self.limit_per_minute = rate.limit
        if rate.remaining is not None and rate.remaining < self.burst:
            missing = self.burst - rate.remaining
            await self._state.hold_slots(self._key, missing * self.interval)

    async def hold(self, seconds: float, *, customers: bool = False) -> None:
        """After a 429: nobody sends (to that budget) for this merchant for `seconds`."""
        key = f"{self._key}:customers" if customers else self._key
        await self._state.hold_slots(key, seconds)
