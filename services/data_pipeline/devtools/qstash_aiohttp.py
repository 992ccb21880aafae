"""The `qstash` SDK's async HTTP client on aiohttp, for the local stack's long-running front
(local only, like aiohttp itself: the Lambda intake keeps httpx).

The SDK's `AsyncHttpClient` builds its own `httpx.AsyncClient` and calls two things of it:
`request(method=, url=, params=, headers=, content=)`, reading `is_success`, `status_code`,
`headers`, `text` and `json()` of the answer, and `aclose()` (our `QStashQueue.close`). This
class is those two on one aiohttp session: the SDK still builds every request body and parses
every answer, only httpx's client layer is gone. With many webhooks in flight through one
process, the front spends ~14 % less CPU per webhook than through httpx on aiohttp's transport
(docs/benchmarks.md). Failures come out as the httpx errors the SDK's client would raise, so
`QStashQueue` treats them as before. The SDK's streaming calls (`build_request`/`send`) are not
offered: the front only publishes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx
import orjson


class SdkAnswer:
    """What the SDK reads of an `httpx.Response`."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers  # aiohttp's case-insensitive multidict, as httpx's Headers
        self.content = content

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return orjson.loads(self.content)


class AiohttpSdkClient:
    def __init__(self, *, timeout_seconds: float = 10.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None  # made in the serving event loop
        self.requests = 0

    async def request(
        self,
        *,
        method: str,
        url: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: str | bytes | None = None,
    ) -> SdkAnswer:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        self.requests += 1
        data = content.encode() if isinstance(content, str) else content
        try:
            async with self._session.request(
                method, url, params=params, headers=headers, data=data
            ) as response:
                return SdkAnswer(response.status, response.headers, await response.read())
        except TimeoutError as error:  # first: aiohttp's socket timeouts are connection errors too
            raise httpx.TimeoutException(f"no answer from {url} in time") from error
        except aiohttp.ClientConnectionError as error:
            raise httpx.ConnectError(f"{type(error).__name__}: {error}") from error
        except aiohttp.ClientError as error:
            raise httpx.TransportError(f"{type(error).__name__}: {error}") from error

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
