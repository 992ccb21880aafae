"""A real HTTP destination for QStash deliveries that records them and answers as scripted."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

from data_pipeline.devtools.serving import RunningServer, start_server
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Delivery:
    path: str
    query: str
    body: bytes
    headers: dict[str, str]
    at: float


@dataclass
class Sink:
    deliveries: list[Delivery] = field(default_factory=list)
    scripts: dict[str, deque[tuple[int, dict[str, str]]]] = field(
        default_factory=lambda: defaultdict(deque)
    )
    server: RunningServer | None = None

    def fail_next(self, path: str, status: int, times: int = 1, **headers: str) -> None:
        for _ in range(times):
            self.scripts[path].append((status, headers))

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def to(self, path: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.path == path]

    async def wait_for(self, path: str, count: int, timeout: float = 15.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while len(self.to(path)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: {len(self.to(path))} of {count} deliveries")
            await asyncio.sleep(0.02)
        return self.to(path)

    async def _receive(self, request: Request) -> Response:
        path = request.url.path
        self.deliveries.append(
            Delivery(
                path,
                request.url.query,
                await request.body(),
                dict(request.headers),
                time.monotonic(),
            )
        )
        if self.scripts[path]:
            status, headers = self.scripts[path].popleft()
            return Response(f"scripted {status}", status_code=status, headers=headers)
        return Response("ok")

    async def start(self) -> Sink:
        app = Starlette(routes=[Route("/{rest:path}", self._receive, methods=["POST", "PUT"])])
        self.server = await start_server(app, "127.0.0.1", 0, lifespan="off")
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
