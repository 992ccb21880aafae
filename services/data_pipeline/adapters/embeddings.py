"""Embeddings through the official `openai` client, against OpenAI or any compatible endpoint.

- Batching: concurrent callers share requests (group commit), up to MAX_INPUTS texts and
  MAX_CHARS characters each, well inside OpenAI's 2,048-input and token limits.
- Retries: one in-process retry on 429/5xx/connection errors when the server's wait
  (`Retry-After-Ms` / `Retry-After`) is short; longer waits are not spent inside a function:
  the failure surfaces as EmbeddingsUnavailable carrying the server's wait, the embed step
  answers 503 with that Retry-After, and QStash delivers it again after it.
- Circuit breaker: after BREAKER_AFTER failed requests in a row, calls fail at once for a
  growing pause instead of each waiting out a dead endpoint.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

import openai
import structlog

from data_pipeline.adapters.embedder import Embedder, Kind
from data_pipeline.errors import PermanentError, TransientError
from data_pipeline.flushers import Flushers

log = structlog.get_logger("embeddings")
MAX_INPUTS = 64  # OpenAI allows 2,048; 64 keeps a request to a CPU-bound local model short
MAX_CHARS = 200_000
BREAKER_AFTER = 5
MAX_PAUSE_SECONDS = 300.0
IN_PROCESS_WAIT_SECONDS = 2.0  # the longest server-requested wait spent inside the function
DEFAULT_RETRY_WAIT = 0.5


@dataclass(slots=True)
class _Waiting:
    texts: list[str]
    kind: Kind
    future: asyncio.Future[list[list[float]]]


class EmbeddingsUnavailable(TransientError):
    """The endpoint is failing or rate-limiting; try again after `retry_after` seconds."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, retryable: bool = True
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retryable = retryable  # worth an immediate in-process retry


class CircuitBreaker:
    def __init__(self, failures_to_open: int = BREAKER_AFTER) -> None:
        self._limit = failures_to_open
        self.failures = 0
        self.open_until = 0.0

    def check(self) -> None:
        remaining = self.open_until - time.monotonic()
        if remaining > 0:
            raise EmbeddingsUnavailable(
                f"embeddings paused for {remaining:.0f} s after {self.failures} failures",
                retry_after=remaining,
                retryable=False,
            )

    def succeeded(self) -> None:
        self.failures = 0
        self.open_until = 0.0

    def failed(self) -> float:
        """Count a failure; returns the pause now in force (0 while still closed)."""
        self.failures += 1
        if self.failures < self._limit:
            return 0.0
        pause = min(MAX_PAUSE_SECONDS, 5.0 * 2 ** (self.failures - self._limit))
        self.open_until = time.monotonic() + pause
        return pause


class OpenAIEmbedder(Embedder):
    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None,
        model: str,
        dimensions: int,
        send_dimensions: bool,
        input_types: bool,
        timeout: float = 15.0,
    ) -> None:
        self.model = model
        self.dimensions = dimensions
        self._send_dimensions = send_dimensions
        self._input_types = input_types
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout
        )
        self.breaker = CircuitBreaker()
        self._waiting: deque[_Waiting] = deque()
        self._flushers = Flushers(self._flush, limit=2)
        self.requests = 0  # HTTP requests made (each carries many texts)
        self.texts = 0  # texts embedded

    async def embed(self, texts: list[str], kind: Kind = "passage") -> list[list[float]]:
        """One vector per text, in order. Raises EmbeddingsUnavailable or PermanentError."""
        if not texts:
            return []
        if len(texts) > MAX_INPUTS:
            parts = [texts[i : i + MAX_INPUTS] for i in range(0, len(texts), MAX_INPUTS)]
            results = await asyncio.gather(*(self.embed(part, kind) for part in parts))
            return [vector for result in results for vector in result]
        self.breaker.check()  # fail fast while paused: no request, no wait
        future: asyncio.Future[list[list[float]]] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(list(texts), kind, future))
        self._flushers.wake()
        return await future

    async def _flush(self) -> None:
        while self._waiting:
            batch = self._take()
            texts = [t for w in batch for t in w.texts]
            try:
                vectors = await self._request(texts, batch[0].kind)
            except Exception as error:  # every waiter gets the failure
                for waiting in batch:
                    if not waiting.future.done():
                        waiting.future.set_exception(error)
                continue
            start = 0
            for waiting in batch:
                end = start + len(waiting.texts)
                if not waiting.future.done():
                    waiting.future.set_result(vectors[start:end])
                start = end

    def _take(self) -> list[_Waiting]:
        """Callers of one kind, in arrival order, within the request limits."""
        first = self._waiting.popleft()
        batch, count, chars = [first], len(first.texts), sum(map(len, first.texts))
        for waiting in list(self._waiting):
            size = sum(map(len, waiting.texts))
            if waiting.kind != first.kind:
                continue
            if count + len(waiting.texts) > MAX_INPUTS or chars + size > MAX_CHARS:
                break
            self._waiting.remove(waiting)
            batch.append(waiting)
            count += len(waiting.texts)
            chars += size
        return batch

    async def _request(self, texts: list[str], kind: Kind) -> list[list[float]]:
        try:
            return await self._attempt(texts, kind)
        except EmbeddingsUnavailable as error:
            wait = DEFAULT_RETRY_WAIT if error.retry_after is None else error.retry_after
            if wait > IN_PROCESS_WAIT_SECONDS or not error.retryable:
                raise
            await asyncio.sleep(wait)
            return await self._attempt(texts, kind)

    async def _attempt(self, texts: list[str], kind: Kind) -> list[list[float]]:
        self.breaker.check()
        extra = {"input_type": kind} if self._input_types else None
        options = {"dimensions": self.dimensions} if self._send_dimensions else {}
        self.requests += 1
        try:
            response = await self._client.embeddings.create(
                model=self.model, input=texts, extra_body=extra, **options
            )
        except openai.BadRequestError as error:
            raise PermanentError(f"embedding request rejected: {_message(error)}") from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
            self._failed(error)
            raise EmbeddingsUnavailable(
                f"embeddings not authorised: {_message(error)}", retry_after=60, retryable=False
            ) from None
        except openai.APIStatusError as error:
            pause = self._failed(error)
            status = error.status_code
            if status in (408, 409, 429) or status >= 500:
                wait = max(pause, _retry_after(error) or 0.0) or None
                retryable = True
            else:  # 404 unknown model and the like: configuration, not load; retry much later
                wait, retryable = max(pause, 60.0), False
            raise EmbeddingsUnavailable(
                f"embeddings answered {status}: {_message(error)}",
                retry_after=wait,
                retryable=retryable,
            ) from None
        except (openai.APIConnectionError, openai.APITimeoutError) as error:
            pause = self._failed(error)
            raise EmbeddingsUnavailable(
                f"embeddings unreachable: {type(error).__name__}", retry_after=pause or None
            ) from None
        vectors = [item.embedding for item in sorted(response.data, key=lambda d: d.index)]
        if len(vectors) != len(texts):
            raise EmbeddingsUnavailable("embeddings answer does not match the request")
        for vector in vectors:
            if len(vector) != self.dimensions:
                raise PermanentError(
                    f"{self.model} returned {len(vector)} dimensions, configured {self.dimensions}"
                )
        self.breaker.succeeded()
        self.texts += len(texts)
        return [list(map(float, v)) for v in vectors]

    def _failed(self, error: BaseException) -> float:
        pause = self.breaker.failed()
        log.warning("embeddings_failed", error=type(error).__name__, paused_seconds=pause)
        return pause

    async def aclose(self) -> None:
        await self._flushers.wait()
        await self._client.close()


def _message(error: openai.APIStatusError | openai.APIError) -> str:
    return str(getattr(error, "message", error))[:200]


def _retry_after(error: openai.APIStatusError) -> float | None:
    headers = error.response.headers if error.response is not None else {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                continue
    return None
