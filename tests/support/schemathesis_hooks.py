"""Schemathesis hooks for the API fuzz test (SCHEMATHESIS_HOOKS=tests.support.schemathesis_hooks).

The bulk import takes JSON Lines (`application/x-ndjson`), a media type Schemathesis has no
serializer for: the generated string is sent as it is."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: Any, value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")
