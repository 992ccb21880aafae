"""Salla webhook authentication (reference §1.1).

- `signature`: `X-Salla-Signature` is the lowercase hex HMAC-SHA256 of the raw body bytes, keyed
  with the app's webhook secret. Compared case-insensitively and in constant time.
- `token`: the `Authorization` header equals the secret (a leading `Bearer ` is tolerated).

The strategy comes from our configuration, never from the request's
`X-Salla-Security-Strategy` header, so a caller cannot downgrade the check.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Literal

Strategy = Literal["signature", "token"]
_HEX_DIGITS = frozenset("0123456789abcdef")


def expected_signature(raw_body: bytes, secret: bytes) -> str:
    return hmac.new(secret, raw_body, hashlib.sha256).hexdigest()


def is_authentic(
    raw_body: bytes, headers: Mapping[str, str], *, secret: bytes, strategy: Strategy
) -> bool:
    """Headers must be looked up case-insensitively (Starlette's Headers are)."""
    if strategy == "token":
        return _token_matches(headers.get("authorization"), secret)
    return _signature_matches(raw_body, headers.get("x-salla-signature"), secret)


def _signature_matches(raw_body: bytes, header: str | None, secret: bytes) -> bool:
    if header is None:
        return False
    given = header.strip().lower()
    if len(given) != 64 or not _HEX_DIGITS.issuperset(given):
        return False
    return hmac.compare_digest(given.encode("ascii"), expected_signature(raw_body, secret).encode())


def _token_matches(header: str | None, secret: bytes) -> bool:
    if header is None:
        return False
    given = header.strip()
    if given[:7].lower() == "bearer ":
        given = given[7:].strip()
    # Headers arrive latin-1 decoded; encode back to the bytes that were sent.
    return hmac.compare_digest(given.encode("latin-1", "replace"), secret)
