"""Redis state store (Upstash Redis in production): shared by every function instance.

Read-decide-write steps run as Lua scripts so they are atomic across instances. Versions reach
2^62, beyond the exact range of Lua's doubles, so scripts compare them as decimal strings.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from data_pipeline.adapters.state import (
    SETTLEMENT_TTL_SECONDS,
    EncryptedTokens,
    MerchantRecord,
    StateStore,
    Verdict,
)
from data_pipeline.errors import TransientError

# Mirrors state.decide(); the shared contract tests hold both to the same behaviour.
_SETTLE = """
local previous = redis.call('HMGET', KEYS[1], 'm', 'o')
local verdict
if not previous[1] then verdict = 'first'
elseif previous[1] == ARGV[1] then verdict = 'redelivery'
elseif previous[2] == 'dead_lettered' and (ARGV[2] == 'loaded' or ARGV[2] == 'ignored') then
  verdict = 'recovered'
else verdict = 'duplicate' end
if verdict == 'first' or verdict == 'recovered' then
  redis.call('HSET', KEYS[1], 'm', ARGV[1], 'o', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return verdict
"""

_VERSIONED_HSET = """
local current = redis.call('HGET', KEYS[1], ARGV[1]) or '0'
local proposed = ARGV[2]
local newer = (#proposed > #current) or (#proposed == #current and proposed > current)
if not newer then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], proposed, unpack(ARGV, 3))
return 1
"""


class RedisStateStore(StateStore):
    def __init__(self, url: str, *, prefix: str = "pipeline") -> None:
        self._redis = redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._prefix = prefix
        self._settle = self._redis.register_script(_SETTLE)
        self._versioned_hset = self._redis.register_script(_VERSIONED_HSET)

    def key(self, *parts: object) -> str:
        return ":".join([self._prefix, *map(str, parts)])

    async def _call(self, what: str, awaitable: Any) -> Any:
        try:
            return await awaitable
        except (RedisError, OSError) as error:
            raise TransientError(f"state store {what} failed: {type(error).__name__}") from error

    async def settle(self, event_key: str, message_id: str, outcome: str) -> Verdict:
        result = await self._call(
            "settle",
            self._settle(
                keys=[self.key("settle", event_key)],
                args=[message_id, outcome, SETTLEMENT_TTL_SECONDS],
            ),
        )
        return Verdict(result.decode() if isinstance(result, bytes) else result)

    async def get_merchant(self, merchant_id: int) -> MerchantRecord | None:
        fields = await self._call("read", self._redis.hgetall(self.key("merchant", merchant_id)))
        if not fields:
            return None
        text = {key.decode(): value for key, value in fields.items()}
        expires = text.get("expires_at", b"").decode()
        return MerchantRecord(
            merchant_id=merchant_id,
            installed=text.get("installed") == b"1",
            install_version=int(text.get("install_version", b"0")),
            access_token=text.get("access_token") or None,
            refresh_token=text.get("refresh_token") or None,
            expires_at=float(expires) if expires else None,
            scope=text.get("scope", b"").decode(),
            token_version=int(text.get("token_version", b"0")),
        )

    async def set_installed(self, merchant_id: int, installed: bool, version: int) -> bool:
        return await self._versioned(
            merchant_id, "install_version", version, ["installed", "1" if installed else "0"]
        )

    async def set_tokens(self, merchant_id: int, tokens: EncryptedTokens, version: int) -> bool:
        expires = "" if tokens.expires_at is None else repr(tokens.expires_at)
        return await self._versioned(
            merchant_id,
            "token_version",
            version,
            [
                "access_token",
                tokens.access_token,
                "refresh_token",
                tokens.refresh_token,
                "expires_at",
                expires,
                "scope",
                tokens.scope,
            ],
        )

    async def _versioned(
        self, merchant_id: int, version_field: str, version: int, pairs: list[Any]
    ) -> bool:
        applied = await self._call(
            "write",
            self._versioned_hset(
                keys=[self.key("merchant", merchant_id)], args=[version_field, version, *pairs]
            ),
        )
        return bool(applied)

    async def ping(self) -> None:
        await self._call("ping", self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()
