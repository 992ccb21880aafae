"""The OpenAI embedding adapter (official `openai` client) against the local OpenAI-compatible
server on loopback, running the real multilingual-e5-small model."""

from __future__ import annotations

import asyncio
import math

import pytest
from data_pipeline.adapters.embeddings import MAX_INPUTS, EmbeddingsUnavailable, OpenAIEmbedder
from data_pipeline.errors import PermanentError

from tests.support.embeddings import EMBEDDINGS_KEY, embeddings_server, inject_fault


def embedder(url: str, **overrides) -> OpenAIEmbedder:
    options = {
        "api_key": EMBEDDINGS_KEY,
        "base_url": f"{url}/v1",
        "model": "multilingual-e5-small",
        "dimensions": 384,
        "send_dimensions": False,
        "input_types": True,
    } | overrides
    return OpenAIEmbedder(**options)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


async def test_vectors_are_normalised_ordered_and_arabic_queries_find_arabic_text():
    async with embeddings_server() as (server, _):
        client = embedder(server.url)
        passages = ["قهوة عربية محمصة 250 جرام", "Premium Sukkari dates 1kg", "سجادة صلاة مخملية"]
        vectors = await client.embed(passages)
        (query,) = await client.embed(["قهوة"], "query")
        await client.aclose()
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-3 for v in vectors)
    scores = [cosine(query, v) for v in vectors]
    assert scores.index(max(scores)) == 0  # the coffee passage, not dates or a rug


async def test_concurrent_callers_share_requests_within_the_input_limit():
    async with embeddings_server() as (server, state):
        client = embedder(server.url)
        texts = [[f"منتج رقم {i}-{j}" for j in range(40)] for i in range(20)]  # 800 texts
        results = await asyncio.gather(*(client.embed(batch) for batch in texts))
        await client.aclose()
    assert [len(r) for r in results] == [40] * 20
    assert state.texts == 800
    assert client.requests == state.requests
    assert state.requests <= 800 // 40  # batched: never one request per caller or per text
    assert state.requests >= math.ceil(800 / MAX_INPUTS)


async def test_a_short_429_is_retried_in_process_honouring_retry_after():
    async with embeddings_server() as (server, state):
        await inject_fault(server.url, 429, count=1, retry_after=0.2)
        client = embedder(server.url)
        vectors = await client.embed(["تمر سكري"])
        await client.aclose()
    assert len(vectors[0]) == 384
    assert client.requests == 2 and state.requests == 1  # one refused, one served


async def test_a_long_retry_after_is_not_waited_out_inside_the_function():
    async with embeddings_server() as (server, _):
        await inject_fault(server.url, 429, count=1, retry_after=45)
        client = embedder(server.url)
        with pytest.raises(EmbeddingsUnavailable) as raised:
            await client.embed(["تمر سكري"])
        await client.aclose()
    assert raised.value.retry_after == 45  # the queue redelivers after the server's wait
    assert client.requests == 1


async def test_5xx_bursts_open_the_breaker_which_fails_fast_then_closes_on_success():
    async with embeddings_server() as (server, state):
        await inject_fault(server.url, 503, count=10)
        client = embedder(server.url)
        for _ in range(3):  # each call: one request plus one in-process retry
            with pytest.raises(EmbeddingsUnavailable):
                await client.embed(["هيل أخضر"])
        sent = client.requests
        assert client.breaker.failures >= 5
        with pytest.raises(EmbeddingsUnavailable) as raised:
            await client.embed(["هيل أخضر"])
        assert client.requests == sent  # open: no request at all
        assert raised.value.retry_after is not None and raised.value.retry_after > 1
        client.breaker.open_until = 0  # the pause is over
        state.faults.clear()
        assert len((await client.embed(["هيل أخضر"]))[0]) == 384
        assert client.breaker.failures == 0
        await client.aclose()


async def test_a_wrong_key_and_an_unknown_model_are_unavailable_not_retried_in_a_loop():
    async with embeddings_server() as (server, _):
        wrong_key = embedder(server.url, api_key="nope")
        with pytest.raises(EmbeddingsUnavailable, match="not authorised"):
            await wrong_key.embed(["x"])
        assert wrong_key.requests == 1
        unknown = embedder(server.url, model="text-embedding-3-small", dimensions=1536)
        with pytest.raises(EmbeddingsUnavailable, match="404"):
            await unknown.embed(["x"])
        assert unknown.requests == 1
        await wrong_key.aclose()
        await unknown.aclose()


async def test_a_dimension_mismatch_is_a_configuration_error():
    async with embeddings_server() as (server, _):
        client = embedder(server.url, dimensions=1536)
        with pytest.raises(PermanentError, match="384 dimensions"):
            await client.embed(["x"])
        sent_dimensions = embedder(server.url, dimensions=256, send_dimensions=True)
        with pytest.raises(PermanentError, match="rejected"):
            await sent_dimensions.embed(["x"])
        await client.aclose()
        await sent_dimensions.aclose()


async def test_an_unreachable_endpoint_is_unavailable():
    client = embedder("http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(EmbeddingsUnavailable, match="unreachable"):
        await client.embed(["x"])
    await client.aclose()


async def test_a_caller_with_more_texts_than_one_request_holds_is_split_in_order():
    async with embeddings_server() as (server, state):
        client = embedder(server.url)
        texts = [f"منتج {i}" for i in range(MAX_INPUTS * 2 + 3)]
        vectors = await client.embed(texts)
        (again,) = await client.embed([texts[-1]])
        await client.aclose()
    assert len(vectors) == len(texts) and state.requests == 4
    assert cosine(vectors[-1], again) > 0.999  # order preserved across the split
