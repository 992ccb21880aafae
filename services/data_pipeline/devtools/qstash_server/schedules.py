"""Schedules: a publish request kept with a cron expression and re-published at every tick.

As Upstash documents them (features/schedules.mdx, api-reference/schedules/*): 5-field cron in
UTC, or in any IANA zone with a `CRON_TZ=<zone> ` prefix; `Upstash-Schedule-Id` picks the id
and updates an existing schedule; `Upstash-Queue-Name` enqueues each trigger; every other
publish header configures the messages; deliveries carry `Upstash-Schedule-Id`; a paused
schedule's ticks are ignored. Schedules are durable: after a restart they resume, and a tick
missed while the server was down fires once at start-up (Upstash never stops, so it has no such
case; firing once loses nothing and does not flood).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from data_pipeline.devtools.qstash_server.drafts import ApiError, Draft, check_name, parse_draft
from data_pipeline.devtools.qstash_server.http_io import (
    caller_ip,
    destination,
    header_pairs,
    raw_tail,
    read_body,
)
from data_pipeline.devtools.qstash_server.model import Message, body_fields, now_ms

if TYPE_CHECKING:
    from data_pipeline.devtools.qstash_server.app import ServerState

UTC = ZoneInfo("UTC")


def next_tick_ms(cron: str, after_ms: int) -> int:
    """The first time strictly after `after_ms` that `cron` (optionally CRON_TZ=) matches."""
    expression, zone = cron.strip(), UTC
    if expression.startswith("CRON_TZ="):
        name, _, expression = expression[len("CRON_TZ=") :].partition(" ")
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ApiError(400, f"unknown CRON_TZ time zone {name[:60]!r}") from None
    if len(expression.split()) != 5:
        raise ApiError(400, f"Upstash-Cron must have 5 fields: {cron[:80]!r}")
    try:
        start = datetime.fromtimestamp(after_ms / 1000, zone)
        return int(next(CronSim(expression.strip(), start)).timestamp() * 1000)
    except (CronSimError, StopIteration) as error:
        raise ApiError(400, f"invalid Upstash-Cron {cron[:80]!r}: {error}") from None


@dataclass
class Schedule:
    schedule_id: str
    destination: str
    cron: str
    headers: list[tuple[str, str]]  # the create request's headers, kept verbatim
    caller_ip: str | None
    queue_name: str | None
    created_at_ms: int = field(default_factory=now_ms)
    paused: bool = False
    last_ms: int | None = None
    next_ms: int = 0
    last_states: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def draft(self, body: bytes) -> Draft:
        draft = parse_draft(
            self.destination, body, self.headers, self.caller_ip, queue_name=self.queue_name
        )
        draft.schedule_id = self.schedule_id
        draft.dedup_id = None  # every tick is a new message
        return draft

    def api_json(self, body: bytes) -> dict[str, Any]:
        draft = self.draft(body)
        document: dict[str, Any] = {
            "scheduleId": self.schedule_id,
            "cron": self.cron,
            "destination": self.destination,
            "createdAt": self.created_at_ms,
            "method": draft.method,
            "header": draft.headers,
            "retries": draft.retries,
            "isPaused": self.paused,
            "nextScheduleTime": self.next_ms,
        }
        optional = {
            "callerIP": self.caller_ip,
            "queueName": self.queue_name,
            "delay": draft.delay_seconds,
            "timeout": int(draft.timeout_seconds) if draft.timeout_seconds else None,
            "callback": draft.callback,
            "failureCallback": draft.failure_callback,
            "retryDelayExpression": draft.retry_delay,
            "label": draft.label,
            "lastScheduleTime": self.last_ms,
            "lastScheduleStates": self.last_states or None,
            "error": self.error,
        }
        document.update({key: value for key, value in optional.items() if value is not None})
        if draft.flow_control is not None:
            document.update(draft.flow_control.api_json())
        if not draft.redact_body:
            document.update(body_fields(body, "body", "bodyBase64"))
        return document


class Scheduler:
    """Fires due schedules through the same acceptance path as a publish."""

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self.schedules: dict[str, Schedule] = {}
        self.bodies: dict[str, bytes] = {}
        for document, body in state.store.schedules():
            document["headers"] = [tuple(pair) for pair in document["headers"]]
            schedule = Schedule(**document)
            self.schedules[schedule.schedule_id] = schedule
            self.bodies[schedule.schedule_id] = body
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._state.dispatcher.on_finished = self.message_finished
        self._task = asyncio.create_task(self._run(), name="qstash-scheduler")

    async def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    def save(self, schedule: Schedule, body: bytes) -> None:
        with self._state.store.transaction() as db:
            self._state.store.save_schedule(db, asdict(schedule), body)
        self.schedules[schedule.schedule_id] = schedule
        self.bodies[schedule.schedule_id] = body
        self._wakeup.set()

    def delete(self, schedule_id: str) -> None:
        with self._state.store.transaction() as db:
            self._state.store.delete_schedule(db, schedule_id)
        self.schedules.pop(schedule_id, None)
        self.bodies.pop(schedule_id, None)

    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            now = now_ms()
            for schedule in list(self.schedules.values()):
                if not schedule.paused and schedule.next_ms <= now:
                    self._fire(schedule, now)
            upcoming = [s.next_ms for s in self.schedules.values() if not s.paused]
            timeout = max(0.0, (min(upcoming) - now_ms()) / 1000) if upcoming else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    def _fire(self, schedule: Schedule, now: int) -> None:
        from data_pipeline.devtools.qstash_server.publishing import accept

        body = self.bodies[schedule.schedule_id]
        (outcome,) = accept(self._state, [schedule.draft(body)])
        schedule.last_ms = now
        if isinstance(outcome, ApiError):  # e.g. its URL group was deleted since
            schedule.error, schedule.last_states = str(outcome), {}
        else:
            results = outcome[0] if isinstance(outcome[0], list) else [outcome[0]]
            schedule.error = None
            schedule.last_states = {r["messageId"]: "IN_PROGRESS" for r in results}
        schedule.next_ms = next_tick_ms(schedule.cron, now)
        self.save(schedule, body)

    def message_finished(self, message: Message, delivered: bool) -> None:
        schedule = self.schedules.get(message.schedule_id or "")
        if schedule is not None and message.message_id in schedule.last_states:
            schedule.last_states[message.message_id] = "SUCCESS" if delivered else "FAIL"
            self.save(schedule, self.bodies[schedule.schedule_id])


def _scheduler(state: ServerState) -> Scheduler:
    assert state.scheduler is not None, "scheduler not started"
    return state.scheduler


# -- HTTP ----------------------------------------------------------------------------------------
async def create(request: Request, state: ServerState) -> Response:
    # Keep what configures the messages, never the caller's Authorization or hop headers.
    pairs = [
        (name, value)
        for name, value in header_pairs(request)
        if name.lower().startswith("upstash-") or name.lower() == "content-type"
    ]
    lowered = {name.lower(): value for name, value in pairs}
    prefix = "/v2/schedules/" if request.url.path.startswith("/v2/schedules/") else "/v2/publish/"
    target = destination(raw_tail(request, prefix))
    cron = lowered.get("upstash-cron", "").strip()
    if not cron:
        raise ApiError(400, "Upstash-Cron is required")
    schedule_id = lowered.get("upstash-schedule-id") or "scd_" + secrets.token_urlsafe(18)
    check_name(schedule_id, "Upstash-Schedule-Id")
    scheduler = _scheduler(state)
    previous = scheduler.schedules.get(schedule_id)
    schedule = Schedule(
        schedule_id=schedule_id,
        destination=target,
        cron=cron,
        headers=pairs,
        caller_ip=caller_ip(request),
        queue_name=lowered.get("upstash-queue-name") or None,
        created_at_ms=previous.created_at_ms if previous else now_ms(),
        next_ms=next_tick_ms(cron, now_ms()),
    )
    body = await read_body(request, state.max_body_bytes)
    schedule.draft(body)  # validates every header now, not at the first tick
    scheduler.save(schedule, body)
    return JSONResponse({"scheduleId": schedule_id})


async def list_schedules(request: Request, state: ServerState) -> Any:
    scheduler = _scheduler(state)
    return [
        schedule.api_json(scheduler.bodies[schedule_id])
        for schedule_id, schedule in sorted(scheduler.schedules.items())
    ]


def _known(request: Request, state: ServerState) -> Schedule:
    schedule = _scheduler(state).schedules.get(request.path_params["schedule_id"])
    if schedule is None:
        raise ApiError(404, f"schedule {request.path_params['schedule_id'][:100]} not found")
    return schedule


async def get_schedule(request: Request, state: ServerState) -> Any:
    schedule = _known(request, state)
    return schedule.api_json(_scheduler(state).bodies[schedule.schedule_id])


async def delete_schedule(request: Request, state: ServerState) -> Response:
    _scheduler(state).delete(request.path_params["schedule_id"])
    return Response(status_code=200)


async def pause(request: Request, state: ServerState) -> Response:
    return _set_paused(request, state, paused=True)


async def resume(request: Request, state: ServerState) -> Response:
    return _set_paused(request, state, paused=False)


def _set_paused(request: Request, state: ServerState, *, paused: bool) -> Response:
    schedule = _known(request, state)
    schedule.paused = paused
    if not paused:  # ticks that passed while paused were ignored, not owed
        schedule.next_ms = next_tick_ms(schedule.cron, now_ms())
    scheduler = _scheduler(state)
    scheduler.save(schedule, scheduler.bodies[schedule.schedule_id])
    return Response(status_code=200)
