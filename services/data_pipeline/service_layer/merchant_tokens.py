"""Merchant access tokens for the Admin API: decrypt, refresh early, refresh once after a 401.

Salla's refresh tokens are single-use, and reusing one revokes the merchant's tokens (reference
§3.1). Every refresh therefore runs under a per-merchant lock shared by all function instances,
re-reads the stored tokens once it holds the lock (another worker may have refreshed already),
and stores both new tokens before releasing it.

Once Salla has answered 200 the old refresh token is spent, so its answer is written ahead
(encrypted) before anything that could lose it: parsing, the token write (retried), the lock.
A later refresh applies a kept answer instead of spending the token again. What cannot be
saved is an answer that never arrives (a connection lost after Salla rotated): the next try
spends the old token again and, if Salla had rotated, is refused; the job then asks for a
re-authorization. The read timeout is long (30 s) to make that rare.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import orjson
import structlog

from data_pipeline.adapters.salla_oauth import IssuedTokens, SallaOAuth, parse_answer
from data_pipeline.adapters.state import EncryptedTokens, MerchantRecord, StateStore
from data_pipeline.adapters.token_cipher import TokenCipher
from data_pipeline.domain.versioning import Rank, make_version
from data_pipeline.errors import PermanentError, TransientError

log = structlog.get_logger("tokens")
T = TypeVar("T")

REFRESH_EARLY_SECONDS = 24 * 3600  # refresh a day before expiry (reference §3.1)
LOCK_TTL_SECONDS = 30.0
LOCK_WAIT_SECONDS = 20.0
ANSWER_KEPT_SECONDS = 30 * 24 * 3600  # long enough for a fixed release to apply it
WRITE_ATTEMPTS = 4


def _answer_key(merchant_id: int) -> str:
    return f"salla-refresh-answer:{merchant_id}"


class MerchantNotAuthorized(PermanentError):
    """No usable tokens: the merchant never authorized the app, or uninstalled it."""


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    version: int

    def __repr__(self) -> str:
        return f"AccessToken(version={self.version})"


class TokenProvider:
    def __init__(self, state: StateStore, cipher: TokenCipher, oauth: SallaOAuth) -> None:
        self._state = state
        self._cipher = cipher
        self._oauth = oauth
        self.refreshes = 0  # refreshes this process performed (tests, metrics)
        # Answers Salla gave that the state store has not taken yet (it was down).
        self._unsaved: dict[int, dict[str, str]] = {}

    async def current(self, merchant_id: int) -> AccessToken:
        """The merchant's access token, refreshed first if it expires within a day."""
        record = await self._record(merchant_id)
        if (
            record.expires_at is not None
            and record.expires_at - time.time() < REFRESH_EARLY_SECONDS
        ):
            return await self.refresh(merchant_id, stale=self._token(record))
        return self._token(record)

    async def refresh(self, merchant_id: int, *, stale: AccessToken) -> AccessToken:
        """Replace `stale` (rejected or about to expire). At most one refresh per stale token,
        whatever the number of workers asking at once: the others get the new token."""
        lock, owner = f"salla-refresh:{merchant_id}", uuid.uuid4().hex
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while not await self._state.acquire_lock(lock, owner, LOCK_TTL_SECONDS):
            current = self._token(await self._record(merchant_id))
            if current.version != stale.version:
                return current  # another worker refreshed while we waited
            if time.monotonic() > deadline:
                raise TransientError("token refresh in progress elsewhere did not finish")
            await asyncio.sleep(0.1)
        try:
            record = await self._record(merchant_id)
            current = self._token(record)
            if current.version != stale.version:
                return current
            assert record.refresh_token is not None
            refresh_token = self._cipher.decrypt(record.refresh_token)
            spent = hashlib.sha256(refresh_token.encode()).hexdigest()
            answer = await self._kept_answer(merchant_id, spent)
            if answer is None:
                answer = await self._oauth.exchange(refresh_token)
                self.refreshes += 1
                await self._keep_answer(merchant_id, spent, answer)
            issued = parse_answer(answer, now=time.time())
            return await self._store(merchant_id, record, issued)
        finally:
            await self._state.release_lock(lock, owner)

    async def _store(
        self, merchant_id: int, record: MerchantRecord, issued: IssuedTokens
    ) -> AccessToken:
        version = max(
            record.token_version + 1,
            make_version(
                datetime.now(UTC),
                Rank.UPDATED,
                hashlib.sha256(issued.access_token.encode()).hexdigest(),
            ),
        )
        tokens = EncryptedTokens(
            access_token=self._cipher.encrypt(issued.access_token),
            refresh_token=self._cipher.encrypt(issued.refresh_token),
            expires_at=issued.expires_at,
            scope=issued.scope or record.scope,
        )
        applied = await self._retrying(
            "token write", lambda: self._state.set_tokens(merchant_id, tokens, version)
        )
        await self._forget_answer(merchant_id)
        if not applied:
            # A newer authorization (a reinstall) landed meanwhile: it wins.
            return self._token(await self._record(merchant_id))
        log.info("salla_token_refreshed", merchant=merchant_id, token_version=version)
        return AccessToken(issued.access_token, version)

    # -- the write-ahead answer -------------------------------------------------------------------
    async def _kept_answer(self, merchant_id: int, spent: str) -> bytes | None:
        """Salla's answer to spending the refresh token whose digest is `spent`, if kept. An
        answer to an earlier token (already applied, its record not yet dropped) is not it."""
        kept = self._unsaved.get(merchant_id)  # the state store was down when it arrived
        if kept is None:
            sealed = await self._state.get_record(_answer_key(merchant_id))
            if sealed is None:
                return None
            kept = orjson.loads(self._cipher.decrypt(sealed))
        if kept["spent"] != spent:
            return None
        return str(kept["answer"]).encode()

    async def _keep_answer(self, merchant_id: int, spent: str, answer: bytes) -> None:
        kept = {"spent": spent, "answer": answer.decode("utf-8", "replace")}
        self._unsaved[merchant_id] = kept
        sealed = self._cipher.encrypt(orjson.dumps(kept).decode())
        await self._retrying(
            "answer write",
            lambda: self._state.put_record(_answer_key(merchant_id), sealed, ANSWER_KEPT_SECONDS),
        )
        del self._unsaved[merchant_id]

    async def _forget_answer(self, merchant_id: int) -> None:
        self._unsaved.pop(merchant_id, None)
        # A failure is harmless: a kept answer to an older token is never applied.
        with contextlib.suppress(TransientError):
            await self._state.drop_record(_answer_key(merchant_id))

    @staticmethod
    async def _retrying(what: str, write: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(1, WRITE_ATTEMPTS):
            try:
                return await write()
            except TransientError:
                log.warning("salla_token_state_retry", what=what, attempt=attempt)
                await asyncio.sleep(0.2 * 2 ** (attempt - 1))
        return await write()  # the last attempt's error is the caller's

    async def _record(self, merchant_id: int) -> MerchantRecord:
        record = await self._state.get_merchant(merchant_id)
        if record is None or record.access_token is None or record.refresh_token is None:
            raise MerchantNotAuthorized(f"merchant {merchant_id} has not authorized the app")
        if not record.installed:
            raise MerchantNotAuthorized(f"merchant {merchant_id} has uninstalled the app")
        return record

    def _token(self, record: MerchantRecord) -> AccessToken:
        assert record.access_token is not None
        return AccessToken(self._cipher.decrypt(record.access_token), record.token_version)
