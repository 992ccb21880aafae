"""Callbacks and failure callbacks: new, signed QStash messages about a delivery attempt.

Per upstash docs (features/callbacks.mdx): the callback is called after every attempt (so
possibly once per retry; `retried == maxRetries` marks the last), the failure callback once,
after the last attempt failed, with the `dlqId` of the entry it left in the DLQ. Both POST a
JSON body describing the response and the source message; `Upstash-Callback-<Option>` /
`Upstash-Failure-Callback-<Option>` headers configure them like a publish (Timeout, Retries,
Delay, Method, Retry-Delay, Forward-<Header>); unset options take the source's settings.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from data_pipeline.devtools.qstash_server.model import Headers, Message, new_message_id, now_ms
from data_pipeline.devtools.qstash_server.timing import parse_delay


def callback_message(
    source: Message,
    *,
    url: str,
    options: dict[str, str],
    status: int,
    response_headers: dict[str, list[str]],
    response_body: bytes,
    dlq_id: str | None = None,
) -> Message:
    document: dict[str, Any] = {
        "status": status,
        "header": response_headers,
        "body": base64.b64encode(response_body).decode(),
        "retried": source.retried,
        "maxRetries": source.max_retries,
        "sourceMessageId": source.message_id,
        "url": source.url,
        "method": source.method,
        "sourceHeader": source.headers,
        "sourceBody": base64.b64encode(source.body).decode(),
        # The docs show both timestamps as strings of milliseconds.
        "notBefore": str(source.not_before_ms),
        "createdAt": str(source.created_at_ms),
    }
    optional = {
        "dlqId": dlq_id,
        "topicName": source.topic_name,
        "endpointName": source.endpoint_name,
        "scheduleId": source.schedule_id,
        "callerIP": source.caller_ip,
    }
    document.update({key: value for key, value in optional.items() if value})
    headers: Headers = {"Content-Type": ("application/json",)}
    for name, value in options.items():
        if name.startswith("forward-"):
            headers[name[len("forward-") :]] = (value,)
    created = now_ms()
    delay = options.get("delay")
    timeout = options.get("timeout")
    return Message(
        message_id=new_message_id(),
        url=url,
        method=options.get("method", "POST"),
        body=json.dumps(document).encode(),
        headers=headers,
        max_retries=int(options.get("retries", source.max_retries)),
        created_at_ms=created,
        not_before_ms=created + int(parse_delay(delay) * 1000 if delay else 0),
        retry_delay=options.get("retry-delay", source.retry_delay),
        timeout_seconds=parse_delay(timeout) if timeout else source.timeout_seconds,
        caller_ip=source.caller_ip,
    )
