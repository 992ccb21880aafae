"""The local stack's front process: Salla's webhooks served here, everything else proxied.

In production one API Gateway routes `POST /api/webhooks/salla` to the intake function and
every other path to the worker function, so deliveries, a backfill or the embeddings can never
take the webhook's slots. Locally the front stands in for both the gateway and the intake: its
own process on the public port, at normal CPU priority, serving the webhook with the intake
function's lean app and proxying the other paths to the worker process (which runs at a lower
priority, with chDB and the deliveries). QStash deliveries skip the front: the local QStash
server delivers the public URL's paths straight to the worker (`qstash-dev --route`), as the
gateway would, and signatures still name the public URL.

Two answers are merged because the counts they report are split between the processes: the
intake counts webhooks (received, accepted, deduplicated by QStash), the worker everything
after. `/metrics` sums both expositions sample by sample; `/api/dev/settlement` adds the
front's counts to the worker's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Metric, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from data_pipeline.bootstrap import IntakeContainer
from data_pipeline.entrypoints.api.intake import WebhookFastPath
from data_pipeline.observability.metrics import PipelineMetrics

# Hop-by-hop headers (RFC 9110 §7.6.1) are the proxy's own, never forwarded; content-length is
# recomputed for the streamed body.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
METRICS_PATH = "/metrics"
SETTLEMENT_PATH = "/api/dev/settlement"


def create_front_app(container: IntakeContainer, worker_url: str) -> ASGIApp:
    worker = httpx.AsyncClient(
        base_url=worker_url,
        timeout=httpx.Timeout(300, connect=5),  # imports and backfill starts can take minutes
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
    )

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        await worker.aclose()
        await container.aclose()

    async def proxy(request: Request) -> Response:
        path = request.url.path
        if request.method == "GET" and path == METRICS_PATH:
            return await _merged(request, worker, _metrics_with(container.metrics))
        if request.method == "GET" and path == SETTLEMENT_PATH:
            return await _merged(request, worker, _settlement_with(container.metrics))
        upstream = worker.build_request(
            request.method,
            request.url.path,
            params=request.url.query.encode(),
            headers=_forwarded(request.headers.raw),
            content=request.stream(),
        )
        try:
            answer = await worker.send(upstream, stream=True)
        except httpx.HTTPError as error:
            return _worker_down(error)
        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            headers=dict(_forwarded(answer.headers.raw)),
            background=BackgroundTask(answer.aclose),
        )

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    app = Starlette(routes=[Route("/{path:path}", proxy, methods=methods)], lifespan=lifespan)
    app.state.container = container
    return WebhookFastPath(app, container)


def _forwarded(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in raw
        if name.decode("latin-1").lower() not in _HOP_BY_HOP
    ]


async def _merged(
    request: Request, worker: httpx.AsyncClient, merge: Callable[[httpx.Response], Response]
) -> Response:
    """The worker's answer with the front's counts merged in; a refusal (e.g. 401 without the
    service key) or an outage is passed on as it is."""
    try:
        answer = await worker.request(
            request.method,
            request.url.path,
            params=request.url.query.encode(),
            headers=_forwarded(request.headers.raw),
        )
    except httpx.HTTPError as error:
        return _worker_down(error)
    if answer.status_code != 200:
        content_type = answer.headers.get("content-type")
        return Response(answer.content, answer.status_code, media_type=content_type)
    return merge(answer)


def _worker_down(error: httpx.HTTPError) -> Response:
    return JSONResponse(
        {"detail": f"the worker process is not answering: {type(error).__name__}"},
        status_code=502,
    )


def _metrics_with(own: PipelineMetrics) -> Callable[[httpx.Response], Response]:
    def merge(answer: httpx.Response) -> Response:
        merged = merge_expositions(answer.text, generate_latest(own.registry).decode())
        return Response(merged, media_type=CONTENT_TYPE_LATEST)

    return merge


def _settlement_with(own: PipelineMetrics) -> Callable[[httpx.Response], Response]:
    def merge(answer: httpx.Response) -> Response:
        counts, mine = answer.json(), own.settlement()
        for name in ("accepted", "settled", "recovered"):
            counts[name] = counts.get(name, 0) + mine[name]
        outcomes = counts.setdefault("outcomes", {})
        for outcome, count in mine["outcomes"].items():
            outcomes[outcome] = outcomes.get(outcome, 0) + count
        return Response(orjson.dumps(counts), media_type="application/json")

    return merge


def merge_expositions(*texts: str) -> bytes:
    """Prometheus text expositions of the same metrics from several processes, as one: every
    sample (name and labels) summed. Counters and histograms add up; the gauges here are
    per-process amounts (pending events, in-flight work), whose sum is the stack's."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            merged = families.setdefault(
                family.name, Metric(family.name, family.documentation, family.type, family.unit)
            )
            samples = values.setdefault(merged.name, {})
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in samples:
                    samples[key] = sample.value
                elif sample.name.endswith("_created"):  # a creation time: the earliest
                    samples[key] = min(samples[key], sample.value)
                else:
                    samples[key] += sample.value
    for name, family in families.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(families.values())))
    return generate_latest(registry)


class _Fixed:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families
