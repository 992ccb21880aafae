"""What the local QStash server keeps (messages, dead letters, queues, schedules) and the JSON
shapes the QStash v2 API gives them (../shared/reference/qstash.md §1.1)."""

from __future__ import annotations

import base64
import functools
import itertools
import secrets
import time
from dataclasses import dataclass, field, fields
from typing import Any

import orjson


def now_ms() -> int:
    return int(time.time() * 1000)


def new_message_id() -> str:
    # Time first, then randomness: ids made close together sort close together, so the store's
    # indexes on them grow at one end instead of touching a random page per message (a quarter
    # of the server's CPU per publish, measured). Still unguessable: 96 random bits.
    return f"msg_{time.time_ns() >> 16:013x}{secrets.token_urlsafe(12)}"


# FIFO order within a queue must survive restarts: a counter seeded from the clock.
_sequence = itertools.count(time.time_ns())


def next_sequence() -> int:
    return next(_sequence)


# Headers delivered to the destination, as QStash reports them: name → values. Tuples, not
# lists: every pending message is held in memory, and a tuple of strings (then the dict holding
# only such tuples) leaves the cyclic GC's sight, where lists stay tracked. At 40,000 held
# messages a full collection took 49 ms with lists and 9 ms with tuples and shared flow-control
# settings (docs/benchmarks.md): pauses in the middle of every publish.
Headers = dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class FlowControl:
    """`Upstash-Flow-Control-Key` + `-Value` (parallelism, rate per period in seconds).
    Immutable: messages with the same settings share one instance (`flow_control`)."""

    key: str
    parallelism: int | None = None
    rate: int | None = None
    period: int = 1

    def api_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"flowControlKey": self.key, "period": self.period}
        if self.parallelism is not None:
            document["parallelism"] = self.parallelism
        if self.rate is not None:
            document["rate"] = self.rate
        return document


def flow_control(
    key: str, parallelism: int | None = None, rate: int | None = None, period: int = 1
) -> FlowControl:
    """The one instance for these settings (a bounded cache: any number of keys still works)."""
    return _shared_flow_control(key, parallelism, rate, period)  # one cache key per settings


@functools.lru_cache(maxsize=1024)
def _shared_flow_control(
    key: str, parallelism: int | None, rate: int | None, period: int
) -> FlowControl:
    return FlowControl(key, parallelism, rate, period)


@dataclass
class Message:
    message_id: str
    url: str
    method: str
    body: bytes
    # Headers delivered to the destination (Upstash-Forward-* with the prefix removed).
    headers: Headers
    max_retries: int
    created_at_ms: int
    not_before_ms: int
    retried: int = 0
    topic_name: str | None = None
    endpoint_name: str | None = None
    retry_delay: str | None = None
    timeout_seconds: float | None = None
    label: str | None = None
    redact_body: bool = False
    caller_ip: str | None = None
    queue_name: str | None = None
    schedule_id: str | None = None
    flow_control: FlowControl | None = None
    callback: str | None = None
    failure_callback: str | None = None
    # `Upstash-Callback-<Name>` / `Upstash-Failure-Callback-<Name>`: lower-cased name → value.
    callback_options: dict[str, str] = field(default_factory=dict)
    failure_callback_options: dict[str, str] = field(default_factory=dict)
    # A callback created by a queued message's last attempt keeps that queue's slot until it
    # finishes: "the next message will wait for callbacks to finish" (features/queues.mdx).
    holds_queue: str | None = None
    sequence: int = field(default_factory=next_sequence)

    def metadata_json(self) -> bytes:
        # Built by hand: dataclasses.asdict deep-copies every field, and this runs for every
        # message accepted (it was half the server's accept cost).
        document = {name: getattr(self, name) for name in _STORED_FIELDS}
        control = self.flow_control
        if control is not None:
            document["flow_control"] = {
                "key": control.key,
                "parallelism": control.parallelism,
                "rate": control.rate,
                "period": control.period,
            }
        return orjson.dumps(document)

    @classmethod
    def from_row(cls, metadata: str | bytes, body: bytes) -> Message:
        document = orjson.loads(metadata)
        document.pop("extra", None)  # written by older versions of this server
        control = document.pop("flow_control", None)
        headers = {name: tuple(values) for name, values in document.pop("headers").items()}
        return cls(
            body=bytes(body),
            headers=headers,
            flow_control=flow_control(**control) if control else None,
            **document,
        )

    def api_json(self) -> dict[str, Any]:
        """The `GET /v2/messages/{id}` shape (the keys the SDK reads)."""
        document: dict[str, Any] = {
            "messageId": self.message_id,
            "url": self.url,
            "method": self.method,
            "header": self.headers,
            "maxRetries": self.max_retries,
            "notBefore": self.not_before_ms,
            "createdAt": self.created_at_ms,
        }
        optional = {
            "topicName": self.topic_name,
            "endpointName": self.endpoint_name,
            "queueName": self.queue_name,
            "scheduleId": self.schedule_id,
            "retryDelayExpression": self.retry_delay,
            "label": self.label,
            "callerIP": self.caller_ip,
            "callback": self.callback,
            "failureCallback": self.failure_callback,
            "callbackHeader": _option_headers(self.callback_options),
            "failureCallbackHeader": _option_headers(self.failure_callback_options),
        }
        document.update({key: value for key, value in optional.items() if value})
        if self.flow_control is not None:
            document.update(self.flow_control.api_json())
        if not self.redact_body:
            document.update(body_fields(self.body, "body", "bodyBase64"))
        return document

    def log_details(self) -> dict[str, Any]:
        """The message's part of a `/v2/events` entry (keys differ from /v2/messages)."""
        document: dict[str, Any] = {
            "method": self.method,
            "header": self.headers,
            "maxRetries": self.max_retries,
        }
        optional = {
            "endpointName": self.endpoint_name,
            "queueName": self.queue_name,
            "scheduleId": self.schedule_id,
            "retryDelayExpr": self.retry_delay,
            "label": self.label,
            "callback": self.callback,
            "failureCallback": self.failure_callback,
            "callbackHeaders": _option_headers(self.callback_options),
            "failureCallbackHeaders": _option_headers(self.failure_callback_options),
        }
        document.update({key: value for key, value in optional.items() if value})
        if self.timeout_seconds is not None:
            document["timeout"] = int(self.timeout_seconds)
        if self.flow_control is not None:
            document.update(self.flow_control.api_json())
        if not self.redact_body:
            document["body"] = base64.b64encode(self.body).decode()
        return document


_STORED_FIELDS = tuple(f.name for f in fields(Message) if f.name != "body")


def _option_headers(options: dict[str, str]) -> dict[str, list[str]] | None:
    return {name: [value] for name, value in options.items()} or None


def body_fields(body: bytes, text_key: str, base64_key: str) -> dict[str, str]:
    try:
        return {text_key: body.decode("utf-8")}
    except UnicodeDecodeError:
        return {base64_key: base64.b64encode(body).decode()}


@dataclass
class DeadLetter:
    dlq_id: str
    message: Message
    response_status: int
    response_headers: dict[str, list[str]]
    response_body: bytes
    failed_at_ms: int

    def api_json(self) -> dict[str, Any]:
        document = self.message.api_json()
        document.update(
            dlqId=self.dlq_id,
            responseStatus=self.response_status,
            responseHeader=self.response_headers,
            **body_fields(self.response_body, "responseBody", "responseBodyBase64"),
        )
        return document


@dataclass
class Queue:
    """A FIFO queue: at most `parallelism` of its messages are active at once."""

    name: str
    parallelism: int = 1
    paused: bool = False
    created_at_ms: int = field(default_factory=now_ms)
    updated_at_ms: int = field(default_factory=now_ms)

    def api_json(self, lag: int) -> dict[str, Any]:
        return {
            "name": self.name,
            "parallelism": self.parallelism,
            "paused": self.paused,
            "lag": lag,
            "createdAt": self.created_at_ms,
            "updatedAt": self.updated_at_ms,
        }
