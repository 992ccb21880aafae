"""Salla's per-store leaky bucket (reference §4): `limit` requests per `period` seconds."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class LeakyBucket:
    limit: int
    period: float = 60.0
    level: float = 0.0
    updated: float = 0.0

    @property
    def leak_per_second(self) -> float:
        return self.limit / self.period

    def take(self, now: float) -> tuple[bool, dict[str, str]]:
        """Admit one request or refuse it; either way the X-RateLimit-* headers to send."""
        self.level = max(0.0, self.level - (now - self.updated) * self.leak_per_second)
        self.updated = now
        admitted = self.level + 1 <= self.limit
        if admitted:
            self.level += 1
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, math.floor(self.limit - self.level))),
            "X-RateLimit-Reset": str(math.ceil(now + self.level / self.leak_per_second)),
        }
        if not admitted:
            wait = (self.level + 1 - self.limit) / self.leak_per_second
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return admitted, headers
