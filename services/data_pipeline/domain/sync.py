"""Historical sync: the job, its window, its cursor and its progress. Pure; no I/O.

A job walks three resources in order: products and customers in full, then the orders created
inside the window. The cursor says where the next step starts; the step counter `seq` orders the
chain of queue messages (a step runs only if its `seq` matches the job's, which is what makes
duplicate and stale deliveries harmless).
"""

from __future__ import annotations

import calendar
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

Depth = Literal["12m", "24m"]
RESOURCES: tuple[str, ...] = ("products", "customers", "orders")
# Share of the progress bar per resource: orders (a detail call each) dominate the work.
WEIGHTS = {"products": 0.1, "customers": 0.1, "orders": 0.8}
DEFAULT_RATE_LIMIT_PER_MINUTE = 120  # Salla's Plus plan: the smallest budget, until headers say
ORDERS_PER_SLICE = 600  # ten list pages of 60


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"

    @property
    def active(self) -> bool:
        return self in (JobStatus.QUEUED, JobStatus.RUNNING)


def months_back(day: date, months: int) -> date:
    """The same calendar day `months` earlier, clamped to the month's length (Mar 31 → Feb 28)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


@dataclass(frozen=True)
class SyncWindow:
    """Order creation dates to sync, in Asia/Riyadh, both ends inclusive."""

    start: date
    end: date

    @classmethod
    def from_depth(cls, depth: Depth, today: date) -> SyncWindow:
        return cls(start=months_back(today, int(depth.removesuffix("m"))), end=today)

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end

    def query_range(self) -> tuple[date, date]:
        """Salla's from_date/to_date boundary semantics are unconfirmed (reference §5), so the
        query is one day wider on each side and rows are filtered by their own date."""
        return self.start - timedelta(days=1), self.end + timedelta(days=1)

    def slices(self, months: int = 1) -> list[SyncWindow]:
        """The window cut at calendar months, `months` per slice, newest first. Listing slice by
        slice keeps page numbers stable: only the newest slice gains orders while it is paged."""
        parts: list[SyncWindow] = []
        end = self.end
        while end >= self.start:
            first = end.replace(day=1)
            for _ in range(months - 1):
                first = (first - timedelta(days=1)).replace(day=1)
            parts.append(SyncWindow(max(first, self.start), end))
            end = first - timedelta(days=1)
        return parts

    @property
    def calendar_months(self) -> int:
        return (self.end.year - self.start.year) * 12 + self.end.month - self.start.month + 1


def slice_months_for(orders: int, window: SyncWindow) -> int:
    """Months per order slice: enough for about ten full pages each, so that the partial last
    page of every slice costs little (requests per order), but at least one month."""
    months = window.calendar_months
    if orders <= 0:
        return months
    per_month = orders / months
    return max(1, min(months, math.ceil(ORDERS_PER_SLICE / per_month)))


@dataclass
class Cursor:
    """Where the next step starts."""

    resource: str = "products"
    slice: int = 0  # orders: index into the window's month slices, newest first
    params: dict[str, str] = field(default_factory=dict)  # next list page's query; {} = first
    page: int = 1  # number of the next list page within this resource (or order slice)
    pending: list[int] = field(default_factory=list)  # listed orders whose details are due
    listing_done: bool = False  # no list pages left in this resource (or order slice)
    recent_ids: list[int] = field(default_factory=list)  # ids on the page before this one
    empty_retries: int = 0  # empty pages in a row while pagination claimed more
    # Offset pages shift when rows are deleted between requests minutes apart, and an empty
    # page is passed over after its retries: either can skip rows. So a listing (an order
    # slice, all products, all customers) is re-listed once unless its total is unchanged and
    # no page was passed over. Orders re-listed are fetched only if not seen yet.
    slice_total: int | None = None  # the listing's row count when it began
    slice_ids: list[int] = field(default_factory=list)  # orders of the slice already queued
    passed_over: bool = False  # an empty page that claimed more was believed
    verifying: bool = False  # this is the re-listing
    verified: bool = False  # nothing left to check in this slice

    def label(self) -> str:
        again = "v" if self.verifying else ""
        if self.resource == "orders":
            return f"orders:s{self.slice}{again}p{self.page}"
        return f"{self.resource}:{again}p{self.page}"

    @property
    def needs_check(self) -> bool:
        return self.listing_done and not self.pending and not self.verified

    def checked(self, total_now: int | None) -> None:
        """The listing's total was probed again once it ended: done if nothing can have been
        skipped (or this was the re-listing already), else list it once more. A listing
        without totals (Salla's `{count, current, next}` pagination, whose cursor may be an
        offset in disguise) cannot tell, so it is always listed once more."""
        unchanged = total_now is not None and total_now == self.slice_total
        if self.verifying or (unchanged and not self.passed_over):
            self.verified = True
            return
        self.verifying, self.listing_done = True, False
        self.params, self.page, self.recent_ids, self.passed_over = {}, 1, [], False

    def listed(self, row_ids: list[int], next_params: dict[str, str] | None) -> None:
        """A list page was read (and its rows taken care of, or queued in `pending`)."""
        self.recent_ids = row_ids
        self.empty_retries = 0
        self.page += 1
        if next_params is None:
            self.listing_done = True
        else:
            self.params = next_params


@dataclass
class SyncJob:
    job_id: str
    merchant_id: int
    depth: Depth
    window_start: str  # ISO dates
    window_end: str
    status: JobStatus = JobStatus.QUEUED
    seq: int = 0
    cursor: Cursor = field(default_factory=Cursor)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0))
    scanned: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0))
    totals: dict[str, int | None] = field(default_factory=lambda: dict.fromkeys(RESOURCES))
    requests: dict[str, int] = field(default_factory=dict)
    progress: int = 0
    started_at: str = ""
    updated_at: str = ""
    error: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # e.g. orders deleted before fetch
    failures: int = 0  # consecutive failed steps (circuit breaker)
    breaker_open_until: float = 0.0  # Unix seconds
    next_step_at: float = 0.0  # Unix seconds: when the next step is due (stall detection)
    rate_limit_per_minute: int = DEFAULT_RATE_LIMIT_PER_MINUTE
    slice_months: int = 1  # calendar months per order slice, chosen from the order count
    note: str | None = None  # why the job is waiting, when it is
    load_seconds: float = 0.0  # time spent transforming and loading (benchmarks)
    finished_at: str = ""

    @property
    def window(self) -> SyncWindow:
        return SyncWindow(
            date.fromisoformat(self.window_start), date.fromisoformat(self.window_end)
        )

    def order_slices(self) -> list[SyncWindow]:
        return self.window.slices(self.slice_months)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SyncJob:
        document: dict[str, Any] = json.loads(text)
        document["cursor"] = Cursor(**document["cursor"])
        document["status"] = JobStatus(document["status"])
        return cls(**document)

    def status_document(self) -> dict[str, Any]:
        """The shape `GET /api/jobs/sync/status` returns."""
        return {
            "jobId": self.job_id,
            "merchantId": str(self.merchant_id),
            "status": self.status.value,
            "progress": self.progress,
            "counts": dict(self.counts),
            "startedAt": self.started_at,
            "updatedAt": self.updated_at,
            "error": self.error,
            "note": self.note,
            "depth": self.depth,
            "window": {"from": self.window_start, "to": self.window_end},
            "position": self.cursor.label(),
            "skipped": dict(self.skipped),
            "requests": dict(self.requests),
            "finishedAt": self.finished_at or None,
            "loadSeconds": round(self.load_seconds, 3),
        }

    def count_request(self, kind: str, n: int = 1) -> None:
        self.requests[kind] = self.requests.get(kind, 0) + n

    def touch(self, now: datetime) -> None:
        self.updated_at = now.isoformat(timespec="seconds")


def computed_progress(job: SyncJob) -> int:
    """0–99 while the job runs, 100 only once it has completed; never lower than before."""
    if job.status is JobStatus.COMPLETED:
        return 100
    current = RESOURCES.index(job.cursor.resource)
    share = 0.0
    for index, resource in enumerate(RESOURCES):
        if index < current:
            fraction = 1.0
        elif index == current:
            total = job.totals.get(resource)
            fraction = min(1.0, job.scanned[resource] / total) if total else 0.0
        else:
            fraction = 0.0
        share += WEIGHTS[resource] * fraction
    return max(job.progress, min(99, math.floor(100 * share)))


def next_resource(resource: str) -> str | None:
    index = RESOURCES.index(resource)
    return RESOURCES[index + 1] if index + 1 < len(RESOURCES) else None


def advance(job: SyncJob) -> None:
    """Move past a finished resource (or order slice); complete the job after the last."""
    cursor = job.cursor
    if cursor.pending or not cursor.listing_done or cursor.needs_check:
        return
    if cursor.resource == "orders" and cursor.slice + 1 < len(job.order_slices()):
        job.cursor = Cursor(resource="orders", slice=cursor.slice + 1)
        return
    following = next_resource(cursor.resource)
    if following is None:
        job.status = JobStatus.COMPLETED
        return
    job.cursor = Cursor(resource=following)


def skip(job: SyncJob, reason: str, n: int = 1) -> None:
    job.skipped[reason] = job.skipped.get(reason, 0) + n
