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
from data_pipeline.domain.sync import SyncJob
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


# KEYS: job key, merchant pointer key. ARGV: job JSON, job key. Active = QUEUED or RUNNING.
_CREATE_JOB = """
local current_key = redis.call('GET', KEYS[2])
if current_key then
  local current = redis.call('GET', current_key)
  if current then
    local status = cjson.decode(current)['status']
    if status == 'QUEUED' or status == 'RUNNING' then return current end
  end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
return false
"""

# KEYS: job key. ARGV: expected seq, new JSON.
_SAVE_JOB = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if tostring(cjson.decode(current)['seq']) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Compare-and-set. KEYS: record. ARGV: expected (ignored when ARGV[2] is '1': expect absent),
# '1'|'0', new value, TTL ms.
_REPLACE = """
local current = redis.call('GET', KEYS[1])
if ARGV[2] == '1' then
    if current then return 0 end
elseif current ~= ARGV[1] then
    return 0
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
"""

# GCRA with the server's clock, so every function instance agrees on time.
# KEYS: slot hash. ARGV: interval, burst, max wait. Returns the wait as a string (seconds).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tat', 'hold')
local hold = tonumber(state[2] or '0')
if hold > now then return tostring(hold - now) end
local interval = tonumber(ARGV[1])
local tolerance = (tonumber(ARGV[2]) - 1) * interval
local start = math.max(tonumber(state[1] or '0'), now)
local wait = math.max(0, start - tolerance - now)
if wait <= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'tat', tostring(start + interval))
  redis.call('EXPIRE', KEYS[1], 86400)
end
return tostring(wait)
"""

# The same server clock as _RESERVE: a hold computed from a function instance's own clock would
# be off by that instance's skew. KEYS: slot hash. ARGV: seconds to hold.
_HOLD = """
local t = redis.call('TIME')
local until_time = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
local hold = tonumber(redis.call('HGET', KEYS[1], 'hold') or '0')
if until_time > hold then redis.call('HSET', KEYS[1], 'hold', tostring(until_time)) end
redis.call('EXPIRE', KEYS[1], 86400)
return 1
"""


class RedisStateStore(StateStore):
    def __init__(self, url: str, *, prefix: str = "pipeline") -> None:
        self._redis = redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._prefix = prefix
        self._settle = self._redis.register_script(_SETTLE)
        self._versioned_hset = self._redis.register_script(_VERSIONED_HSET)
        self._create_job = self._redis.register_script(_CREATE_JOB)
        self._save_job = self._redis.register_script(_SAVE_JOB)
        self._release = self._redis.register_script(_RELEASE)
        self._reserve = self._redis.register_script(_RESERVE)
        self._hold = self._redis.register_script(_HOLD)
        self._replace = self._redis.register_script(_REPLACE)

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

    async def settle_many(self, settlements: list[tuple[str, str, str]]) -> list[Verdict]:
        """One pipelined round trip per thousand (each script stays atomic on its own key)."""
        verdicts: list[Verdict] = []
        for start in range(0, len(settlements), 1000):
            pipe = self._redis.pipeline(transaction=False)
            for event_key, message_id, outcome in settlements[start : start + 1000]:
                await self._settle(
                    keys=[self.key("settle", event_key)],
                    args=[message_id, outcome, SETTLEMENT_TTL_SECONDS],
                    client=pipe,
                )
            results = await self._call("settle", pipe.execute())
            verdicts += [Verdict(r.decode() if isinstance(r, bytes) else r) for r in results]
        return verdicts

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

    # -- jobs -----------------------------------------------------------------------------------
    async def create_job_unless_active(self, job: SyncJob) -> tuple[SyncJob, bool]:
        job_key = self.key("job", job.job_id)
        existing = await self._call(
            "job create",
            self._create_job(
                keys=[job_key, self.key("merchant-job", job.merchant_id)],
                args=[job.to_json(), job_key],
            ),
        )
        if existing:
            return SyncJob.from_json(existing.decode()), False
        return job, True

    async def get_job(self, job_id: str) -> SyncJob | None:
        text = await self._call("job read", self._redis.get(self.key("job", job_id)))
        return SyncJob.from_json(text.decode()) if text else None

    async def latest_job(self, merchant_id: int) -> SyncJob | None:
        pointer = await self._call(
            "job read", self._redis.get(self.key("merchant-job", merchant_id))
        )
        if not pointer:
            return None
        text = await self._call("job read", self._redis.get(pointer.decode()))
        return SyncJob.from_json(text.decode()) if text else None

    async def save_job(self, job: SyncJob, *, expected_seq: int) -> bool:
        saved = await self._call(
            "job save",
            self._save_job(
                keys=[self.key("job", job.job_id)], args=[str(expected_seq), job.to_json()]
            ),
        )
        return bool(saved)

    # -- leases ---------------------------------------------------------------------------------
    async def acquire_lock(self, name: str, owner: str, ttl_seconds: float) -> bool:
        acquired = await self._call(
            "lock",
            self._redis.set(self.key("lock", name), owner, nx=True, px=int(ttl_seconds * 1000)),
        )
        if acquired:
            return True
        holder = await self._call("lock", self._redis.get(self.key("lock", name)))
        return holder is not None and holder.decode() == owner

    async def release_lock(self, name: str, owner: str) -> None:
        await self._call("unlock", self._release(keys=[self.key("lock", name)], args=[owner]))

    # -- rate limits ----------------------------------------------------------------------------
    async def reserve_slot(
        self, key: str, interval_seconds: float, burst: int, max_wait_seconds: float
    ) -> float:
        wait = await self._call(
            "rate limit",
            self._reserve(
                keys=[self.key("slots", key)],
                args=[repr(interval_seconds), burst, repr(max_wait_seconds)],
            ),
        )
        return float(wait.decode() if isinstance(wait, bytes) else wait)

    async def hold_slots(self, key: str, seconds: float) -> None:
        await self._call(
            "rate limit", self._hold(keys=[self.key("slots", key)], args=[repr(seconds)])
        )

    async def put_record(self, key: str, value: bytes, ttl_seconds: float) -> None:
        await self._call(
            "record", self._redis.set(self.key("record", key), value, px=int(ttl_seconds * 1000))
        )

    async def get_record(self, key: str) -> bytes | None:
        value = await self._call("record", self._redis.get(self.key("record", key)))
        return bytes(value) if value is not None else None

    async def replace_records(
        self, changes: list[tuple[str, bytes | None, bytes]], ttl_seconds: float
    ) -> list[bool]:
        pipe = self._redis.pipeline(transaction=False)
        for key, expected, value in changes:
            absent = "1" if expected is None else "0"
            args = [expected or b"", absent, value, int(ttl_seconds * 1000)]
            await self._replace(keys=[self.key("record", key)], args=args, client=pipe)
        return [bool(stored) for stored in await self._call("record", pipe.execute())]

    async def get_records(self, keys: list[str]) -> dict[str, bytes]:
        if not keys:
            return {}
        values = await self._call(
            "record", self._redis.mget([self.key("record", key) for key in keys])
        )
        return {key: bytes(v) for key, v in zip(keys, values, strict=True) if v is not None}

    async def drop_record(self, key: str) -> None:
        await self._call("record", self._redis.delete(self.key("record", key)))

    async def embedded_digests(self, scope: str, doc_ids: list[str]) -> dict[str, str]:
        if not doc_ids:
            return {}
        values = await self._call(
            "digests", self._redis.hmget(self.key("embedded", scope), doc_ids)
        )
        return {d: v.decode() for d, v in zip(doc_ids, values, strict=True) if v is not None}

    async def record_embedded(self, scope: str, digests: dict[str, str | None]) -> None:
        key = self.key("embedded", scope)  # one hash per namespace: compact, one round trip
        present = {d: v for d, v in digests.items() if v is not None}
        gone = [d for d, v in digests.items() if v is None]
        async with self._redis.pipeline(transaction=True) as pipe:
            if present:
                pipe.hset(key, mapping=present)
            if gone:
                pipe.hdel(key, *gone)
            await self._call("digests", pipe.execute())

    async def ping(self) -> None:
        await self._call("ping", self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()
