"""The events Lambda hands the handler: API Gateway HTTP API (payload 2.0) and Function URLs.

Both use payload format 2.0; they differ in the request context (a Function URL has no stage,
its route key is `$default` and its domain is `<id>.lambda-url.<region>.on.aws`).
https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html#urls-payloads
"""

from __future__ import annotations

from typing import Any


def http_api_event(
    method: str, path: str, body: str = "", headers: dict[str, str] | None = None, query: str = ""
) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json", **(headers or {})},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "abc123.execute-api.eu-central-1.amazonaws.com",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.1",
                "userAgent": "Salla",
            },
            "requestId": "id",
            "routeKey": "$default",
            "stage": "$default",
            "time": "22/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1795341600000,
        },
        "body": body,
        "isBase64Encoded": False,
    }


def function_url_event(
    method: str, path: str, body: str = "", headers: dict[str, str] | None = None
) -> dict[str, Any]:
    event = http_api_event(method, path, body, headers)
    context = event["requestContext"]
    context.pop("stage")
    context.update(
        apiId="urlid", domainName="urlid.lambda-url.eu-central-1.on.aws", domainPrefix="urlid"
    )
    return event
