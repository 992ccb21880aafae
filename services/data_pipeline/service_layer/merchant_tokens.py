"""Merchant access tokens for the Admin API: decrypt, refresh early, refresh once after a 401.

Salla's refresh tokens are single-use, and reusing one revokes the merchant's tokens (reference
§3.1). Every refresh therefore runs under a per-merchant lock shared by all function instances,
re-reads the stored tokens once it holds the lock (another worker may have refreshed already),
and stores both new tokens before releasing it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from data_pipeline.adapters.salla_oauth import SallaOAuth
from data_pipeline.adapters.state import EncryptedTokens, MerchantRecord, StateStore
from data_pipeline.adapters.token_cipher import TokenCipher
from data_pipeline.domain.versioning import Rank, make_version
from data_pipeline.errors import PermanentError, TransientError

log = structlog.get_logger("tokens")

REFRESH_EARLY_SECONDS = 24 * 3600  # refresh a day before expiry (reference §3.1)
LOCK_TTL_SECONDS = 30.0
LOCK_WAIT_SECONDS = 20.0


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
            issued = await self._oauth.refresh(self._cipher.decrypt(record.refresh_token))
            self.refreshes += 1
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
            if not await self._state.set_tokens(merchant_id, tokens, version):
                # A newer authorization (a reinstall) landed meanwhile: it wins.
                return self._token(await self._record(merchant_id))
            log.info("salla_token_refreshed", merchant=merchant_id, token_version=version)
            return AccessToken(issued.access_token, version)
        finally:
            await self._state.release_lock(lock, owner)

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
