"""A publish request's headers, validated into a Draft (../shared/reference/qstash.md §1.3).

Shared by publish, enqueue, batch and schedules (a schedule keeps its request and turns it into
a Draft at every trigger). Bad values are refused with a 400 naming the header; nothing
documented is silently ignored.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from data_pipeline.devtools.qstash_server.model import FlowControl, Headers, flow_control, now_ms
from data_pipeline.devtools.qstash_server.timing import (
    InvalidTiming,
    compile_retry_delay,
    parse_delay,
)

DEFAULT_RETRIES = 3
MAX_RETRIES = 20
NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH"})
FORWARD = "upstash-forward-"
CALLBACK = "upstash-callback-"
FAILURE_CALLBACK = "upstash-failure-callback-"
_FLOW_SETTINGS = frozenset({"parallelism", "rate", "period"})


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Draft:
    """A publish request, validated, before it fans out into messages."""

    destination: str
    body: bytes
    headers: Headers
    method: str = "POST"
    retries: int = DEFAULT_RETRIES
    retry_delay: str | None = None
    not_before_ms: int = field(default_factory=now_ms)
    delay_seconds: int | None = None
    dedup_id: str | None = None
    timeout_seconds: float | None = None
    label: str | None = None
    redact_body: bool = False
    caller_ip: str | None = None
    queue_name: str | None = None
    schedule_id: str | None = None
    flow_control: FlowControl | None = None
    callback: str | None = None
    failure_callback: str | None = None
    callback_options: dict[str, str] = field(default_factory=dict)
    failure_callback_options: dict[str, str] = field(default_factory=dict)

    @property
    def is_url(self) -> bool:
        return is_url(self.destination)


def is_url(destination: str) -> bool:
    return destination.startswith(("http://", "https://"))


def check_url(url: str, what: str = "destination url") -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(400, f"invalid {what} {url[:100]!r}")
    return url


def check_name(name: str, what: str) -> str:
    if not NAME.match(name):
        raise ApiError(
            400, f"invalid {what} {name[:100]!r}: letters, digits, '-', '.' and '_' only"
        )
    return name


def parse_draft(
    destination: str,
    body: bytes,
    header_pairs: list[tuple[str, str]],
    caller_ip: str | None,
    *,
    queue_name: str | None = None,
) -> Draft:
    if is_url(destination):
        check_url(destination)
    else:
        check_name(destination, "destination (URL group name)")
    # One pass over the headers: this runs for every message accepted.
    lowered: dict[str, str] = {}
    forwarded: dict[str, list[str]] = {}
    callback_options: dict[str, str] = {}
    failure_callback_options: dict[str, str] = {}
    for name, value in header_pairs:
        low = name.lower()
        lowered[low] = value
        if not low.startswith("upstash-"):
            continue
        if low.startswith(FORWARD):
            forwarded.setdefault(name[len(FORWARD) :], []).append(value)
        elif low.startswith(CALLBACK):
            callback_options[low[len(CALLBACK) :]] = value
        elif low.startswith(FAILURE_CALLBACK):
            failure_callback_options[low[len(FAILURE_CALLBACK) :]] = value
    if "content-type" in lowered:
        forwarded["Content-Type"] = [lowered["content-type"]]
    draft = Draft(
        destination=destination,
        body=body,
        headers={name: tuple(values) for name, values in forwarded.items()},
        method=_method(lowered.get("upstash-method", "POST")),
        retries=parse_retries(lowered.get("upstash-retries")),
        label=lowered.get("upstash-label") or None,
        caller_ip=caller_ip,
        queue_name=check_name(queue_name, "queue name") if queue_name else None,
        callback=_callback_url(lowered.get("upstash-callback"), "Upstash-Callback"),
        failure_callback=_callback_url(
            lowered.get("upstash-failure-callback"), "Upstash-Failure-Callback"
        ),
        callback_options=_options(callback_options, CALLBACK) if callback_options else {},
        failure_callback_options=(
            _options(failure_callback_options, FAILURE_CALLBACK) if failure_callback_options else {}
        ),
        flow_control=parse_flow_control(
            lowered.get("upstash-flow-control-key"), lowered.get("upstash-flow-control-value")
        ),
    )
    _timing(draft, lowered)
    draft.dedup_id = lowered.get("upstash-deduplication-id") or None
    if (
        draft.dedup_id is None
        and lowered.get("upstash-content-based-deduplication", "").lower() == "true"
    ):
        fingerprint = json.dumps([destination, sorted(forwarded.items())]).encode() + body
        draft.dedup_id = hashlib.sha256(fingerprint).hexdigest()
    redact = {part.strip().lower() for part in lowered.get("upstash-redact-fields", "").split(",")}
    draft.redact_body = "body" in redact
    return draft


def _method(value: str) -> str:
    method = value.upper()
    if method not in METHODS:
        raise ApiError(400, f"invalid Upstash-Method {value[:20]!r}")
    return method


def parse_retries(value: str | None) -> int:
    try:
        retries = DEFAULT_RETRIES if value is None else int(value)
        if not 0 <= retries <= MAX_RETRIES:
            raise ValueError
    except ValueError:
        raise ApiError(400, f"Upstash-Retries must be an integer 0..{MAX_RETRIES}") from None
    return retries


def _callback_url(value: str | None, header: str) -> str | None:
    return check_url(value, f"{header} url") if value else None


def _options(options: dict[str, str], prefix: str) -> dict[str, str]:
    """Validate `Upstash-(Failure-)Callback-<Option>` values (keys lower-cased, unprefixed)."""
    if "retries" in options:
        parse_retries(options["retries"])
    if "method" in options:
        options["method"] = _method(options["method"])
    try:
        for key in ("delay", "timeout"):
            if key in options:
                parse_delay(options[key])
        if "retry-delay" in options:
            compile_retry_delay(options["retry-delay"])
    except InvalidTiming as error:
        raise ApiError(400, f"{prefix}…: {error}") from None
    return options


def _timing(draft: Draft, lowered: dict[str, str]) -> None:
    try:
        draft.retry_delay = lowered.get("upstash-retry-delay") or None
        if draft.retry_delay:
            compile_retry_delay(draft.retry_delay)
        if "upstash-not-before" in lowered:
            draft.not_before_ms = int(lowered["upstash-not-before"]) * 1000
        elif "upstash-delay" in lowered:
            draft.delay_seconds = int(parse_delay(lowered["upstash-delay"]))
            draft.not_before_ms += draft.delay_seconds * 1000
        timeout = lowered.get("upstash-timeout")
        draft.timeout_seconds = parse_delay(timeout) if timeout else None
    except (InvalidTiming, ValueError) as error:
        raise ApiError(400, str(error) or "invalid timing header") from None


def parse_flow_control(key: str | None, value: str | None) -> FlowControl | None:
    """`Upstash-Flow-Control-Key` + `-Value: parallelism=5, rate=10, period=1m`."""
    if key is None:
        if value:
            raise ApiError(400, "Upstash-Flow-Control-Value needs Upstash-Flow-Control-Key")
        return None
    check_name(key, "Upstash-Flow-Control-Key")
    settings: dict[str, int] = {}
    for part in (value or "").split(","):
        if not part.strip():
            continue
        name, _, raw = (piece.strip() for piece in part.partition("="))
        if name not in _FLOW_SETTINGS or not raw:
            raise ApiError(400, f"invalid Upstash-Flow-Control-Value part {part.strip()[:40]!r}")
        try:
            number = int(parse_delay(raw)) if name == "period" else int(raw)
        except (InvalidTiming, ValueError):
            raise ApiError(400, f"invalid flow-control {name} {raw[:40]!r}") from None
        if number < 1:
            raise ApiError(400, f"flow-control {name} must be at least 1")
        settings[name] = number
    return flow_control(key, **settings)
