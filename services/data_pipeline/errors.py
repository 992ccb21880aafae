"""The two kinds of failure, decided once at the edge where they happen.

QStash retries a delivery answered with 5xx and dead-letters one answered with 489 and
`Upstash-NonRetryable-Error: true`; `entrypoints.api.errors` maps these types to those answers.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class of the pipeline's own failures."""


class TransientError(PipelineError):
    """May succeed later without changing the message: a dependency is down or overloaded."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(PipelineError):
    """Can never succeed as sent: retrying is pointless, the message belongs in the DLQ."""


class InvalidPayload(PermanentError):
    """A Salla payload that does not have the shape or values we can load."""
