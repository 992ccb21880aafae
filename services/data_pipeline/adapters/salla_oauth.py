"""Salla's OAuth token endpoint: exchanging a (single-use) refresh token for new tokens."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
import orjson

from data_pipeline.errors import PermanentError, TransientError

# Used when the answer carries no lifetime (Salla's documented access-token life, reference §3.1).
DEFAULT_LIFETIME_SECONDS = 14 * 24 * 3600


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_at: float
    scope: str

    def __repr__(self) -> str:  # never print credentials, even in a traceback
        return f"IssuedTokens(expires_at={self.expires_at}, scope={self.scope!r})"


class RefreshRejected(PermanentError):
    """The refresh token is invalid or was reused: the merchant must re-authorize the app."""


class RefreshAnswerUnreadable(PermanentError):
    """Salla answered 200 (so the old refresh token is spent) with tokens we cannot read. Never
    retried with the spent token, which would revoke the merchant's tokens; the answer is kept
    (encrypted) so a fixed release can still apply it."""


class SallaOAuth:
    def __init__(
        self, token_url: str, client_id: str, client_secret: str, *, timeout: float = 30.0
    ) -> None:
        self._url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=5.0))

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        return parse_answer(await self.exchange(refresh_token), now=time.time())

    async def exchange(self, refresh_token: str) -> bytes:
        """Spend `refresh_token`; the raw body of Salla's 200 answer. A generous read timeout:
        an answer given up on after Salla rotated the tokens cannot be asked for again."""
        if not self._client_id or not self._client_secret:
            raise RefreshRejected("SALLA_CLIENT_ID and SALLA_CLIENT_SECRET are needed to refresh")
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }
        try:
            response = await self._http.post(
                self._url, data=form, headers={"Accept": "application/json"}
            )
        except httpx.HTTPError as error:
            raise TransientError(f"token refresh: {type(error).__name__}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"token refresh: Salla answered {response.status_code}")
        if response.status_code == 200:
            return response.content
        try:
            document = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            document = {}
        error = document.get("error", "") if isinstance(document, dict) else ""
        raise RefreshRejected(
            f"token refresh rejected ({response.status_code} {str(error)[:60]}): "
            "the merchant must re-authorize the app"
        )

    async def aclose(self) -> None:
        await self._http.aclose()


def parse_answer(raw: bytes, *, now: float) -> IssuedTokens:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RefreshAnswerUnreadable("token refresh answer is not JSON") from None
    if not isinstance(document, dict):
        raise RefreshAnswerUnreadable("token refresh answer is not a JSON object")
    return parse_issued(document, now=now)


def parse_issued(document: dict[str, object], *, now: float) -> IssuedTokens:
    """Accept `expires_in` (a duration) or `expires` (a timestamp): both are seen (§3.1)."""
    data = document.get("data") if isinstance(document.get("data"), dict) else document
    assert isinstance(data, dict)
    access, refresh = data.get("access_token"), data.get("refresh_token")
    if not isinstance(access, str) or not isinstance(refresh, str) or not access or not refresh:
        raise RefreshAnswerUnreadable("token refresh answer lacks access_token/refresh_token")
    expires_at = now + DEFAULT_LIFETIME_SECONDS
    if isinstance(data.get("expires_in"), int | float):
        expires_at = now + float(data["expires_in"])  # type: ignore[arg-type]
    elif isinstance(data.get("expires"), int | float):
        expires = float(data["expires"])  # type: ignore[arg-type]
        # A timestamp is in the future; a small number is a duration after all.
        expires_at = expires if expires > 1_000_000_000 else now + expires
    return IssuedTokens(access, refresh, expires_at, str(data.get("scope") or ""))
