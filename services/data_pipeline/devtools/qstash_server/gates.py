"""What may start now: queue lanes (FIFO with parallelism) and flow-control keys.

Pure bookkeeping, no I/O; the dispatcher asks and obeys.

Queues (upstash docs, features/queues.mdx): messages of a queue become active in FIFO order, at
most `parallelism` at a time (1 by default); an active message keeps its slot through its
retries and its callbacks, so with parallelism 1 the next waits until the current one is
DELIVERED or FAILED. A paused queue accepts messages but activates none.

Flow control (features/flowcontrol.mdx, api-reference/flow-control/*): limits apply per key,
across URLs. Parallelism bounds the calls in flight; rate bounds the calls started per period
(default 1 s). Over either limit a message joins the key's waitlist and starts, in order, when
a call finishes or the period ends. Each message carries its own config; while messages with
different configs are pending "QStash will effectively allow the highest rate/period or highest
parallelism". A pinned value overrides the messages' configs; pinning resets the rate window.
A paused key holds every message in its waitlist.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from data_pipeline.devtools.qstash_server.model import FlowControl, Queue

START = "start"  # a FlowGate verdict: the call may start now (and has been counted)


@dataclass
class QueueLane:
    queue: Queue
    backlog: deque[str] = field(default_factory=deque)  # waiting for a slot, FIFO
    active: set[str] = field(default_factory=set)  # holding a slot (in flight or retrying)

    @property
    def lag(self) -> int:
        return len(self.backlog) + len(self.active)

    def activate(self) -> list[str]:
        """Take as many messages off the backlog as free slots allow."""
        started = []
        while not self.queue.paused and self.backlog and len(self.active) < self.queue.parallelism:
            message_id = self.backlog.popleft()
            self.active.add(message_id)
            started.append(message_id)
        return started

    def forget(self, message_id: str) -> None:
        self.active.discard(message_id)
        if message_id in self.backlog:
            self.backlog.remove(message_id)


@dataclass
class FlowGate:
    key: str
    paused: bool = False
    pinned_parallelism: int | None = None
    pinned_rate: int | None = None
    pinned_period: int | None = None
    waitlist: deque[str] = field(default_factory=deque)
    # Taken off the waitlist for a free slot and on their way to start; others queue behind.
    reserved: set[str] = field(default_factory=set)
    in_flight: int = 0
    rate_count: int = 0
    period_start_ms: int = 0
    pending_configs: Counter[FlowControl] = field(default_factory=Counter)
    last_config: FlowControl | None = None

    # -- configuration -------------------------------------------------------------------------
    def track(self, config: FlowControl) -> None:
        """A message with this config is pending (accepted, not finished)."""
        self.pending_configs[config] += 1
        self.last_config = config

    def untrack(self, config: FlowControl) -> None:
        self.pending_configs[config] -= 1
        if self.pending_configs[config] <= 0:
            del self.pending_configs[config]

    def _configs(self) -> list[FlowControl]:
        return list(self.pending_configs) or ([self.last_config] if self.last_config else [])

    @property
    def parallelism(self) -> int | None:
        """None: unlimited. A pending message without a parallelism limit lifts it."""
        if self.pinned_parallelism is not None:
            return self.pinned_parallelism
        values = [config.parallelism for config in self._configs()]
        return None if not values or None in values else max(v for v in values if v)

    @property
    def rate(self) -> tuple[int, int] | None:
        """(calls, period seconds), or None for no rate limit; the fastest pending config."""
        if self.pinned_rate is not None:
            return self.pinned_rate, self.pinned_period or 1
        configs = self._configs()
        if not configs or any(config.rate is None for config in configs):
            return None
        fastest = max(configs, key=lambda c: (c.rate or 0) / c.period)
        assert fastest.rate is not None
        return fastest.rate, fastest.period

    # -- admission -----------------------------------------------------------------------------
    def _roll(self, now_ms: int) -> None:
        rate = self.rate
        period_ms = (rate[1] if rate else 1) * 1000
        if now_ms >= self.period_start_ms + period_ms:
            self.period_start_ms = now_ms
            self.rate_count = 0

    def try_start(self, now_ms: int) -> str | int | None:
        """START (counted), a time in ms to ask again (rate window), or None (wait for a slot)."""
        if self.paused:
            return None
        parallelism = self.parallelism
        if parallelism is not None and self.in_flight >= parallelism:
            return None
        self._roll(now_ms)
        rate = self.rate
        if rate is not None and self.rate_count >= rate[0]:
            return self.period_start_ms + rate[1] * 1000
        self.in_flight += 1
        self.rate_count += 1
        return START

    def room(self, now_ms: int) -> int:
        """How many waiting messages could start now."""
        if self.paused:
            return 0
        self._roll(now_ms)
        free = [10**9]
        if (parallelism := self.parallelism) is not None:
            free.append(parallelism - self.in_flight)
        if (rate := self.rate) is not None:
            free.append(rate[0] - self.rate_count)
        return max(0, min(free) - len(self.reserved))

    def next_window_ms(self) -> int | None:
        rate = self.rate
        return self.period_start_ms + rate[1] * 1000 if rate is not None else None

    def finished(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)

    def forget(self, message_id: str) -> None:
        self.reserved.discard(message_id)
        if message_id in self.waitlist:
            self.waitlist.remove(message_id)

    # -- management API ------------------------------------------------------------------------
    def pin(self, parallelism: int | None, rate: int | None, period: int | None) -> None:
        if parallelism is not None:
            self.pinned_parallelism = parallelism
        if rate is not None:
            self.pinned_rate = rate
            self.pinned_period = period or self.pinned_period or 1
        elif period is not None and self.pinned_rate is not None:
            self.pinned_period = period
        self.reset_rate(0)

    def unpin(self, parallelism: bool, rate: bool) -> None:
        if parallelism:
            self.pinned_parallelism = None
        if rate:
            self.pinned_rate = self.pinned_period = None

    def reset_rate(self, now_ms: int) -> None:
        self.rate_count = 0
        self.period_start_ms = now_ms

    def settings_json(self) -> dict[str, Any]:
        """What survives a restart: pause and pins (counters are live state)."""
        return {
            "paused": self.paused,
            "pinned_parallelism": self.pinned_parallelism,
            "pinned_rate": self.pinned_rate,
            "pinned_period": self.pinned_period,
        }

    def api_json(self, now_ms: int) -> dict[str, Any]:
        self._roll(now_ms)
        rate = self.rate
        return {
            "flowControlKey": self.key,
            "waitListSize": len(self.waitlist) + len(self.reserved),
            "parallelismMax": self.parallelism or 0,
            "parallelismCount": self.in_flight,
            "rateMax": rate[0] if rate else 0,
            "rateCount": self.rate_count,
            "ratePeriod": rate[1] if rate else 0,
            "ratePeriodStart": self.period_start_ms // 1000,
            "isPaused": self.paused,
            "isPinnedParallelism": self.pinned_parallelism is not None,
            "isPinnedRate": self.pinned_rate is not None,
        }
