"""`Upstash-Signature`: an HS256 JWT exactly as QStash signs deliveries (reference §3).

Claims: iss "Upstash", sub = the exact delivery URL, iat = nbf = now, exp = now + 300,
jti unique, body = base64url(SHA-256(raw body)) with padding. The key is the raw UTF-8 bytes
of the signing-key string. Never stamped ahead of the receiver's clock: PyJWT rejects a future
`iat`/`nbf` with zero leeway.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time

import jwt

TOKEN_LIFETIME_SECONDS = 300


def body_claim(body: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode()


def sign_delivery(url: str, body: bytes, key: str, *, now: int | None = None) -> str:
    issued = int(time.time()) if now is None else now
    claims = {
        "iss": "Upstash",
        "sub": url,
        "iat": issued,
        "nbf": issued,
        "exp": issued + TOKEN_LIFETIME_SECONDS,
        "jti": "jwt_" + secrets.token_hex(12),
        "body": body_claim(body),
    }
    return jwt.encode(claims, key, algorithm="HS256")
