"""Messages as the local QStash server keeps them, and their JSON shapes in the QStash API."""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any


def now_ms() -> int:
    return int(time.time() * 1000)


def new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


@dataclass
class Message:
    message_id: str
    url: str
    method: str
    body: bytes
    # Headers delivered to the destination (Upstash-Forward-* with the prefix removed), as
    # QStash reports them: name → list of values.
    headers: dict[str, list[str]]
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
    extra: dict[str, Any] = field(default_factory=dict)

    def metadata_json(self) -> str:
        document = asdict(self)
        document.pop("body")
        return json.dumps(document)

    @classmethod
    def from_row(cls, metadata: str, body: bytes) -> Message:
        return cls(body=bytes(body), **json.loads(metadata))

    def api_json(self) -> dict[str, Any]:
        """The `GET /v2/messages/{id}` shape (keys the SDK reads)."""
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
            "retryDelayExpression": self.retry_delay,
            "label": self.label,
            "callerIP": self.caller_ip,
        }
        document.update({key: value for key, value in optional.items() if value is not None})
        if not self.redact_body:
            document.update(body_fields(self.body, "body", "bodyBase64"))
        return document


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
