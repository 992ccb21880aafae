"""SyncOrchestrator: historical sync as a chain of QStash steps (the recursive-function pattern).

A step is one QStash message `{jobId, seq}`. It runs only when `seq` is the job's current step:
it reads one list page (or continues the details of the page before), loads what it read,
then saves the cursor, counts and `seq + 1` in one compare-and-set, and only then publishes the
next step (deduplication id `jobId:position:seq`). So:

- a duplicate or late delivery of a finished step finds `seq` moved on and does nothing, except
  re-publishing the next step when the previous attempt crashed between saving and publishing
  (the deduplication id makes that a no-op when the publish had gone through);
- a step that crashes before saving is retried by QStash and starts again from the saved cursor;
  the warehouse load is versioned, so loading the same rows twice changes nothing, and counts
  are saved with the cursor, so nothing is counted twice;
- two copies running at once are serialised by a per-job lease, and only one can save.

Waiting never happens inside a function: rate-limit waits, 429s and a Salla outage end the step
and schedule the next one with a QStash delay.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import orjson
import structlog

from data_pipeline.adapters.queue import EventQueue
from data_pipeline.adapters.salla_api import (
    Page,
    RateInfo,
    SallaGateway,
    SallaNotFound,
    SallaRateLimited,
    SallaRejected,
    SallaUnauthorized,
    SallaUnavailable,
)
from data_pipeline.adapters.salla_oauth import RefreshRejected
from data_pipeline.adapters.state import StateStore
from data_pipeline.adapters.warehouse import LoadBatch
from data_pipeline.domain.dates import RIYADH, parse_salla_datetime
from data_pipeline.domain.envelope import parse_envelope
from data_pipeline.domain.events import transform
from data_pipeline.domain.sync import (
    Depth,
    JobStatus,
    SyncJob,
    SyncWindow,
    advance,
    computed_progress,
    skip,
    slice_months_for,
)
from data_pipeline.errors import InvalidPayload, PermanentError, TransientError
from data_pipeline.service_layer.archive import archive_record
from data_pipeline.service_layer.domain_events import DomainEventPublisher, sync_event
from data_pipeline.service_layer.loader import GroupCommitLoader
from data_pipeline.service_layer.merchant_tokens import (
    AccessToken,
    MerchantNotAuthorized,
    TokenProvider,
)
from data_pipeline.service_layer.rag import EmbedFeed
from data_pipeline.service_layer.salla_budget import BudgetDeferred, RequestBudget
from shared.topics import SYNC_FLOW

log = structlog.get_logger("sync")
T = TypeVar("T")

# New requests start only within the first STEP_SECONDS of a step; with the gateway's 10 s
# request timeout a step stays inside Lambda behind API Gateway (29 s) and Vercel (60 s).
STEP_SECONDS = 15.0
DETAIL_CONCURRENCY = 8  # detail fetches in flight: hides Salla's latency at high plan limits
IN_STEP_RETRIES = 2  # a 5xx or timeout is retried twice within the step (0.5 s, 1 s apart)
EMPTY_PAGE_RETRIES = 3  # an empty page while pagination claims more: retried, then believed
BREAKER_AFTER = 3  # failed steps in a row before the circuit opens
FAIL_AFTER = 12  # failed steps in a row before the job fails (resumable); ≈ 1 h of backoff
MAX_BACKOFF_SECONDS = 900
BUSY_RETRY_SECONDS = 15  # a step found busy is delivered again this much later
STALLED_AFTER_SECONDS = 600  # a running job whose next step is this late may be resumed


class SyncRefused(PermanentError):
    """The request conflicts with the merchant's or the job's state (HTTP 409)."""


class JobNotFound(PermanentError):
    """No such job (HTTP 404)."""


class StepBusy(TransientError):
    """Another copy of this step is running; QStash should deliver this one again later."""


@dataclass
class _Stop:
    """Why a step ended before finishing its work."""

    kind: str  # deferred | rate_limited | unavailable | unauthorized | rejected | retry_empty
    delay: float = 0.0
    message: str = ""


def default_backoff(failures: int) -> float:
    """Seconds before the next attempt after `failures` failed steps in a row: 2, 4, 8 … 900."""
    return float(min(MAX_BACKOFF_SECONDS, 2**failures))


def new_job_id() -> str:
    return "sync_" + uuid.uuid4().hex[:20]


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def riyadh_today() -> date:
    return datetime.now(RIYADH).date()


class SyncOrchestrator:
    def __init__(
        self,
        *,
        state: StateStore,
        queue: EventQueue,
        gateway: SallaGateway,
        tokens: TokenProvider,
        loader: GroupCommitLoader,
        step_url: str,
        step_seconds: float = STEP_SECONDS,
        today: Callable[[], date] = riyadh_today,
        feed: EmbedFeed | None = None,
        events: DomainEventPublisher | None = None,
    ) -> None:
        self._feed = feed
        self._events = events
        self._state = state
        self._queue = queue
        self._gateway = gateway
        self._tokens = tokens
        self._loader = loader
        self._step_url = step_url
        self.step_seconds = step_seconds
        self._today = today
        self.breaker_after = BREAKER_AFTER
        self.fail_after = FAIL_AFTER
        self.backoff: Callable[[int], float] = default_backoff

    # -- the app's side --------------------------------------------------------------------------
    async def initiate(self, merchant_id: int, depth: Depth) -> tuple[SyncJob, bool]:
        """Start a backfill, or return the merchant's job that is still running."""
        record = await self._state.get_merchant(merchant_id)
        if record is None or record.access_token is None:
            raise SyncRefused(
                f"merchant {merchant_id} has not authorized the app "
                "(no app.store.authorize event has been received)"
            )
        if not record.installed:
            raise SyncRefused(f"merchant {merchant_id} has uninstalled the app")
        window = SyncWindow.from_depth(depth, self._today())
        now = _now_iso()
        job = SyncJob(
            job_id=new_job_id(),
            merchant_id=merchant_id,
            depth=depth,
            window_start=window.start.isoformat(),
            window_end=window.end.isoformat(),
            started_at=now,
            updated_at=now,
            next_step_at=time.time(),
        )
        job, created = await self._state.create_job_unless_active(job)
        if created:
            await self._publish_or_fail(job)
            log.info("sync_initiated", job=job.job_id, merchant=merchant_id, depth=depth)
        return job, created

    async def latest(self, merchant_id: int) -> SyncJob:
        job = await self._state.latest_job(merchant_id)
        if job is None:
            raise JobNotFound(f"merchant {merchant_id} has no sync job")
        return job

    async def get(self, job_id: str) -> SyncJob:
        job = await self._state.get_job(job_id)
        if job is None:
            raise JobNotFound(f"no sync job {job_id}")
        return job

    async def resume(self, job_id: str) -> SyncJob:
        """Continue a failed (or stalled) job from its last saved cursor."""
        job = await self.get(job_id)
        latest = await self._state.latest_job(job.merchant_id)
        if latest is not None and latest.job_id != job.job_id:
            raise SyncRefused(f"job {job_id} was superseded by {latest.job_id}")
        if job.status is JobStatus.COMPLETED:
            raise SyncRefused(f"job {job_id} has completed; initiate a new sync instead")
        if job.status.active and time.time() < job.next_step_at + STALLED_AFTER_SECONDS:
            raise SyncRefused(f"job {job_id} is running (last step {job.updated_at})")
        record = await self._state.get_merchant(job.merchant_id)
        if record is None or not record.active:
            raise SyncRefused(f"merchant {job.merchant_id} has no valid authorization")
        expected = job.seq
        job.seq += 1
        job.status = JobStatus.RUNNING
        job.error = None
        job.note = "resumed"
        job.failures = 0
        job.breaker_open_until = 0.0
        job.next_step_at = time.time()
        job.touch(datetime.now(UTC))
        if not await self._state.save_job(job, expected_seq=expected):
            raise SyncRefused(f"job {job_id} changed while resuming; try again")
        await self._publish_or_fail(job)
        log.info("sync_resumed", job=job_id, merchant=job.merchant_id, position=job.cursor.label())
        return job

    async def fail(self, job_id: str, seq: int, error: str) -> None:
        """Give up on a step QStash will not retry again; the job stays resumable."""
        job = await self._state.get_job(job_id)
        if job is None or job.seq != seq or not job.status.active:
            return
        lease, owner = f"sync-step:{job_id}", f"fail-{uuid.uuid4().hex}"
        if not await self._state.acquire_lock(lease, owner, 30):
            return  # a copy of this step is running: it carries the job on, never fail it
        try:
            await self._finish_failed(job, seq, error)
        finally:
            await self._state.release_lock(lease, owner)

    # -- the queue's side ------------------------------------------------------------------------
    async def run_step(self, job_id: str, seq: int, *, message_id: str) -> str:
        job = await self._state.get_job(job_id)
        if job is None:
            raise InvalidPayload(f"sync step for unknown job {job_id}")
        if job.seq != seq:
            if job.seq == seq + 1 and job.status.active:
                # The step before saved and then crashed (or its publish failed): publish again;
                # the deduplication id makes this a no-op if the first publish went through.
                await self._publish(job)
                return "republished"
            return "stale"
        if not job.status.active:
            return "finished"
        lease, owner = f"sync-step:{job_id}", message_id or uuid.uuid4().hex
        if not await self._state.acquire_lock(lease, owner, self.step_seconds + 15):
            raise StepBusy("another copy of this step is running", retry_after=5)
        try:
            outcome = await self._step(job)
        finally:
            await self._state.release_lock(lease, owner)
        if outcome in ("advanced", "rescheduled"):
            # After the lease is released: the next step may be delivered at once.
            await self._publish(job)
        return outcome

    async def _step(self, job: SyncJob) -> str:
        expected = job.seq
        wait = job.breaker_open_until - time.time()
        if wait > 1:  # delivered early (a resumed copy, say): keep the breaker's schedule
            return await self._save_and_continue(job, expected, _Stop("deferred", wait))
        job.status = JobStatus.RUNNING
        try:
            token = await self._tokens.current(job.merchant_id)
        except (MerchantNotAuthorized, RefreshRejected) as error:
            return await self._finish_failed(job, expected, str(error))
        except TransientError as error:
            return await self._save_and_continue(job, expected, _Stop("unavailable", 0, str(error)))
        run = _StepRun(self, job, token, time.monotonic() + self.step_seconds)
        await run.execute()
        if run.stop is not None and run.stop.kind in ("unauthorized", "rejected"):
            return await self._finish_failed(job, expected, run.stop.message)
        return await self._save_and_continue(job, expected, run.stop, progressed=run.progressed)

    async def _save_and_continue(
        self, job: SyncJob, expected: int, stop: _Stop | None, *, progressed: bool = False
    ) -> str:
        now = time.time()
        delay = 0.0
        job.note = None
        if stop is None or stop.kind in ("deferred", "rate_limited") or progressed:
            job.failures = 0  # the breaker counts steps that got nothing done
        if stop is not None:
            delay = stop.delay
            if stop.kind == "rate_limited":
                job.note = f"rate limited by Salla: {stop.message}"
            elif stop.kind in ("unavailable", "retry_empty") and progressed:
                delay = max(delay, 1.0)
            elif stop.kind in ("unavailable", "retry_empty"):
                job.failures += 1
                delay = max(delay, self.backoff(job.failures))
                job.note = f"Salla unavailable ({job.failures} failed steps): {stop.message}"
                if job.failures >= self.fail_after:
                    return await self._finish_failed(
                        job, expected, f"Salla unavailable for {job.failures} steps: {stop.message}"
                    )
                if job.failures >= self.breaker_after:
                    job.breaker_open_until = now + delay
                    job.note += f"; circuit open for {math.ceil(delay)} s"
        if job.status is JobStatus.COMPLETED:
            job.progress = 100
            job.finished_at = _now_iso()
        else:
            job.progress = computed_progress(job)
        job.seq += 1
        job.next_step_at = now + delay
        job.touch(datetime.now(UTC))
        if not await self._state.save_job(job, expected_seq=expected):
            return "superseded"
        log.debug(
            "sync_step",
            job=job.job_id,
            position=job.cursor.label(),
            stop=stop.kind if stop else None,
            delay=round(delay, 2),
            counts=job.counts,
        )
        if job.status is JobStatus.COMPLETED:
            log.info("sync_completed", job=job.job_id, merchant=job.merchant_id, counts=job.counts)
            await self._announce(job, "sync.completed", counts=dict(job.counts))
            return "completed"
        return "rescheduled" if stop is not None else "advanced"

    async def _finish_failed(self, job: SyncJob, expected: int, error: str) -> str:
        job.status = JobStatus.FAILED
        job.error = error[:500]
        job.seq = expected + 1
        job.touch(datetime.now(UTC))
        job.finished_at = _now_iso()
        if not await self._state.save_job(job, expected_seq=expected):
            return "superseded"  # another copy moved the job on; its state stands
        log.warning("sync_failed", job=job.job_id, merchant=job.merchant_id, error=job.error)
        await self._announce(job, "sync.failed", error=job.error)
        return "failed"

    async def _announce(self, job: SyncJob, name: str, **data: Any) -> None:
        """The job's end as a domain event, once per (job, seq): after the state says so, and
        never at the cost of the job (a subscriber's outage is QStash's to retry; a publish that
        fails here is logged, the job's status endpoint stays the source of truth)."""
        if self._events is None:
            return
        try:
            await self._events.publish(
                [sync_event(name, job.merchant_id, job.job_id, job.seq, **data)]
            )
        except TransientError as error:
            log.warning("sync_event_not_published", job=job.job_id, event=name, error=str(error))

    async def _publish(self, job: SyncJob, delay: float | None = None, copy: str = "") -> None:
        """Publish the job's current step (`copy`: a second message for the same step, with a
        deduplication id of its own)."""
        if delay is None:
            delay = max(0.0, job.next_step_at - time.time())
        body = orjson.dumps({"jobId": job.job_id, "seq": job.seq})
        await self._queue.publish_step(
            self._step_url,
            body,
            dedup_id=f"{job.job_id}:{job.cursor.label()}:{job.seq}" + (f":{copy}" if copy else ""),
            flow=SYNC_FLOW,
            delay_seconds=math.ceil(delay) if delay >= 1 else 0,
        )

    async def requeue_busy(self, job_id: str, seq: int) -> str:
        """A delivery found its step's lease held. The holder may be running it, or may have
        died holding it (a killed instance keeps the lease until it expires): either way a
        copy is published to come back later, and this delivery is done. Were it retried
        instead, its retries would run out while a dead holder's lease lasts, and the job would
        stop for good. If the holder finishes the step first, the copy arrives stale."""
        job = await self._state.get_job(job_id)
        if job is None or job.seq != seq or not job.status.active:
            return "stale"
        window = int(time.time() // BUSY_RETRY_SECONDS)  # one copy per window, not per delivery
        await self._publish(job, BUSY_RETRY_SECONDS, copy=f"busy:{window}")
        return "busy"

    async def _publish_or_fail(self, job: SyncJob) -> None:
        try:
            await self._publish(job, 0)
        except TransientError as error:
            await self._finish_failed(job, job.seq, f"could not enqueue the first step: {error}")
            raise


class _StepRun:
    """The work of one step on one job: reads from Salla, loads, updates the job in memory."""

    def __init__(
        self, owner: SyncOrchestrator, job: SyncJob, token: AccessToken, deadline: float
    ) -> None:
        self.owner = owner
        self.job = job
        self.token = token
        self.deadline = deadline
        self.budget = RequestBudget(owner._state, job.merchant_id, job.rate_limit_per_minute)
        self.stop: _Stop | None = None
        self.progressed = False  # something was listed or fetched

    async def execute(self) -> None:
        cursor = self.job.cursor
        if not cursor.pending and not cursor.listing_done:
            await self._list_page()
        if self.stop is None and cursor.pending:
            await self._fetch_details()
        if self.stop is None and cursor.needs_check:
            await self._check_slice()
        advance(self.job)
        self.job.rate_limit_per_minute = self.budget.limit_per_minute

    # -- requests ------------------------------------------------------------------------------
    async def _send(
        self, kind: str, call: Callable[[str], Awaitable[T]], rate_of: Callable[[T], RateInfo]
    ) -> T:
        """One request within the budget: after a 401 one token refresh and one retry, after a
        5xx or timeout up to IN_STEP_RETRIES retries while the step has time."""
        customers = kind.startswith("customers")
        refreshed, failures = False, 0
        while True:
            await self.budget.acquire(customers=customers, deadline=self.deadline)
            self.job.count_request(kind)
            token = self.token
            try:
                result = await call(token.value)
            except SallaUnauthorized:
                if refreshed:
                    raise
                refreshed = True
                self.token = await self.owner._tokens.refresh(self.job.merchant_id, stale=token)
                self.job.count_request("token.refresh")
                continue
            except SallaRateLimited as error:
                self.job.count_request("throttled")
                await self.budget.hold(error.retry_after or 60.0, customers=customers)
                raise
            except SallaUnavailable:
                self.job.count_request("failed")
                failures += 1
                backoff = 0.5 * failures
                if failures > IN_STEP_RETRIES or time.monotonic() + backoff > self.deadline:
                    raise
                await asyncio.sleep(backoff)
                continue
            await self.budget.observe(rate_of(result))
            self.progressed = True
            return result

    def _record_stop(self, error: BaseException) -> None:
        """Translate a failed request into why the step stops (the first reason wins)."""
        if self.stop is not None:
            return
        if isinstance(error, BudgetDeferred):
            self.stop = _Stop("deferred", error.wait_seconds)
        elif isinstance(error, SallaRateLimited):
            self.stop = _Stop("rate_limited", error.retry_after or 60.0, str(error))
        elif isinstance(error, SallaUnauthorized):
            self.stop = _Stop(
                "unauthorized",
                message="Salla rejected the merchant's access token even after a refresh "
                f"({error}); the merchant must re-authorize the app",
            )
        elif isinstance(error, MerchantNotAuthorized | RefreshRejected | SallaRejected):
            self.stop = _Stop("rejected", message=str(error))
        elif isinstance(error, TransientError):  # SallaUnavailable, refresh hiccups, state store
            self.stop = _Stop("unavailable", error.retry_after or 0.0, str(error))
        else:
            raise error

    # -- listing -------------------------------------------------------------------------------
    async def _list_page(self) -> None:
        job, cursor = self.job, self.job.cursor
        gateway = self.owner._gateway
        try:
            if cursor.resource == "orders" and job.totals["orders"] is None:
                start, end = job.window.query_range()
                probe = await self._send(
                    "orders.list",
                    lambda t: gateway.list_orders(t, start=start, end=end, params={}, per_page=1),
                    _page_rate,
                )
                job.totals["orders"] = probe.total if probe.total is not None else 0
                job.slice_months = slice_months_for(job.totals["orders"] or 0, job.window)
            page = await self._listing(cursor.params)
        except Exception as error:
            self._record_stop(error)
            return
        if not page.rows and page.claims_more:
            if cursor.empty_retries < EMPTY_PAGE_RETRIES:
                cursor.empty_retries += 1
                delay = self.owner.backoff(cursor.empty_retries)
                self.stop = _Stop("retry_empty", delay, "empty page while pagination claims more")
                return
            cursor.passed_over = True  # believed; the slice is re-listed to find its rows
        if cursor.resource != "orders" and job.totals[cursor.resource] is None:
            job.totals[cursor.resource] = page.total
        if cursor.page == 1 and not cursor.verifying:
            cursor.slice_total = page.total
        if cursor.resource == "orders":
            self._queue_orders(page)
        else:
            await self._load_rows(cursor.resource, page.rows)
        cursor.listed([_row_id(r) for r in page.rows if _row_id(r) is not None], page.next_params)

    async def _listing(self, params: dict[str, str], *, one_row: bool = False) -> Page:
        """A page of the current listing: the order slice, the products or the customers."""
        cursor, gateway = self.job.cursor, self.owner._gateway
        if cursor.resource == "orders":
            start, end = self.job.order_slices()[cursor.slice].query_range()
            size = {"per_page": 1} if one_row else {}
            return await self._send(
                "orders.list",
                lambda t: gateway.list_orders(t, start=start, end=end, params=params, **size),
                _page_rate,
            )
        list_rows = (
            gateway.list_products if cursor.resource == "products" else gateway.list_customers
        )
        query = {**params, "per_page": "1"} if one_row else params
        return await self._send(
            f"{cursor.resource}.list", lambda t: list_rows(t, query), _page_rate
        )

    async def _check_slice(self) -> None:
        """Probe the listing's total once it is done (one request per listing; none where it
        cannot decide: after the re-listing, or for a listing without totals)."""
        job, cursor = self.job, self.job.cursor
        total_now = None
        if not cursor.verifying and cursor.slice_total is not None:
            try:
                total_now = (await self._listing({}, one_row=True)).total
            except Exception as error:
                self._record_stop(error)
                return
        first_pass, passed_over = not cursor.verifying, cursor.passed_over
        cursor.checked(total_now)
        if first_pass and cursor.verifying:
            log.info(
                "sync_listing_relisted",
                job=job.job_id,
                position=cursor.label(),
                total_before=cursor.slice_total,
                total_now=total_now,
                passed_over=passed_over,
            )
            if cursor.resource != "orders":
                # Listed again in full (idempotent loads): count what the store has now.
                job.counts[cursor.resource] = job.scanned[cursor.resource] = 0

    def _queue_orders(self, page: Page) -> None:
        """Queue the page's orders created inside this slice for their detail fetch."""
        job, cursor = self.job, self.job.cursor
        part = job.order_slices()[cursor.slice]
        seen = set(cursor.recent_ids)
        if cursor.verifying:
            seen |= set(cursor.slice_ids)
        for row in page.rows:
            order_id = _row_id(row)
            if order_id is None:
                skip(job, "orders_without_id")
                continue
            if order_id in seen:
                continue  # shifted onto this page by newer orders: handled with the page before
            try:
                created = parse_salla_datetime(row.get("date"), field="order.date")
            except InvalidPayload:
                skip(job, "orders_without_date")
                continue
            if part.contains(created.astimezone(RIYADH).date()):
                cursor.pending.append(order_id)
                cursor.slice_ids.append(order_id)

    # -- details -------------------------------------------------------------------------------
    async def _fetch_details(self) -> None:
        job, cursor = self.job, self.job.cursor
        gateway = self.owner._gateway
        todo = list(cursor.pending)
        fetched: dict[int, tuple[dict[str, Any], datetime]] = {}
        missing: set[int] = set()
        position = 0

        async def worker() -> None:
            nonlocal position
            while self.stop is None and position < len(todo):
                order_id = todo[position]
                position += 1
                try:
                    detail, _ = await self._send(
                        "orders.detail", lambda t, i=order_id: gateway.order(t, i), _detail_rate
                    )
                    fetched[order_id] = (detail, datetime.now(UTC))
                except SallaNotFound:
                    missing.add(order_id)  # deleted since it was listed
                except Exception as error:
                    self._record_stop(error)

        await asyncio.gather(*(worker() for _ in range(DETAIL_CONCURRENCY)))
        loaded = await self._load_orders(fetched)
        done = set(fetched) | missing
        cursor.pending = [i for i in cursor.pending if i not in done]
        job.scanned["orders"] += len(done)
        job.counts["orders"] += loaded
        if missing:
            skip(job, "orders_deleted_before_fetch", len(missing))

    # -- loading -------------------------------------------------------------------------------
    async def _load_orders(self, fetched: dict[int, tuple[dict[str, Any], datetime]]) -> int:
        documents = [
            ("order.backfilled", detail, fetched_at) for detail, fetched_at in fetched.values()
        ]
        return await self._load(documents, "orders")

    async def _load_rows(self, resource: str, rows: list[dict[str, Any]]) -> None:
        event = "product.backfilled" if resource == "products" else "customer.backfilled"
        now = datetime.now(UTC)
        self.job.counts[resource] += await self._load([(event, row, now) for row in rows], resource)
        self.job.scanned[resource] += len(rows)

    async def _load(
        self, documents: list[tuple[str, dict[str, Any], datetime]], resource: str
    ) -> int:
        """Transform and load snapshots through the webhook path. Returns how many loaded.
        A warehouse failure propagates: QStash retries the step from the saved cursor."""
        started = time.perf_counter()
        batch = LoadBatch(raw_events=[], entities=[])
        loaded = 0
        for event, data, fetched_at in documents:
            raw = orjson.dumps(
                {
                    "event": event,
                    "merchant": self.job.merchant_id,
                    "created_at": fetched_at.isoformat(timespec="milliseconds"),
                    "data": data,
                }
            )
            try:
                envelope = parse_envelope(raw)
                result = transform(envelope)
            except InvalidPayload as error:
                skip(self.job, f"{resource}_invalid")
                log.warning(
                    "sync_row_rejected", job=self.job.job_id, id=data.get("id"), reason=str(error)
                )
                continue
            batch.raw_events.append(archive_record(envelope, raw, fetched_at, "sync"))
            batch.entities.extend(result.entities)
            loaded += 1
        await self.owner._loader.load(batch)
        if self.owner._feed is not None:  # a retried step republishes under the same dedup ids
            key = f"sync:{self.job.job_id}:{self.job.seq}"
            await self.owner._feed.announce(self.job.merchant_id, batch.entities, key)
        self.job.load_seconds += time.perf_counter() - started
        return loaded


def _row_id(row: Any) -> int | None:
    value = row.get("id") if isinstance(row, dict) else None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _page_rate(page: Page) -> RateInfo:
    return page.rate


def _detail_rate(result: tuple[dict[str, Any], RateInfo]) -> RateInfo:
    return result[1]
