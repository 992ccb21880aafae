"""QStash's `Upstash-Signature` JWT, verified with a clock tolerance that actually applies.

QStash stamps `iat`/`nbf` at its own "now" in whole seconds and the token lives 300 s
(https://upstash.com/docs/qstash/howto/signature). A worker whose clock is a second behind
must not refuse a genuine delivery: QStash would retry it and, on the last retry, dead-letter
it outside our DLQ accounting. The SDK's `Receiver.verify(clock_tolerance=...)` passes the
tolerance as `options["leeway"]`, which PyJWT ignores (../shared/reference/qstash.md §3.2),
so this is the SDK's algorithm with PyJWT's `leeway=` keyword: current key, then next key
(rotation), issuer `Upstash`, `sub` equal to the exact delivery URL, and the body claim
(base64url SHA-256 of the raw body) compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import jwt

# A few seconds absorbs NTP-disciplined skew between QStash and the function; minutes would not
# be skew any more but a replayed or forged token, and stay refused.
CLOCK_TOLERANCE_SECONDS = 5


class InvalidSignature(Exception):
    """The delivery is not a genuine, current QStash delivery to this URL of this body."""


class DeliveryVerifier:
    def __init__(
        self,
        current_signing_key: str,
        next_signing_key: str,
        *,
        clock_tolerance: int = CLOCK_TOLERANCE_SECONDS,
    ) -> None:
        self._keys = tuple(key for key in (current_signing_key, next_signing_key) if key)
        self._tolerance = clock_tolerance

    def verify(self, *, signature: str, body: bytes, url: str) -> None:
        """Return if the token is valid under either key; raise InvalidSignature otherwise."""
        reasons = []
        for key in self._keys:
            try:
                claims = jwt.decode(
                    signature,
                    key,
                    algorithms=["HS256"],
                    issuer="Upstash",
                    leeway=self._tolerance,
                    options={"require": ["iss", "sub", "exp", "nbf"]},
                )
            except jwt.PyJWTError as error:
                reasons.append(type(error).__name__)
                continue
            self._check_claims(claims, body, url)
            return
        raise InvalidSignature(" / ".join(reasons) or "no signing key configured")

    @staticmethod
    def _check_claims(claims: dict, body: bytes, url: str) -> None:
        if claims.get("sub") != url:
            raise InvalidSignature("the token was issued for another URL")
        claimed = claims.get("body")
        if not isinstance(claimed, str):
            raise InvalidSignature("the token has no body claim")
        expected = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=")
        if not hmac.compare_digest(claimed.rstrip("=").encode("ascii", "replace"), expected):
            raise InvalidSignature("the body does not match the token")
