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
    # Seconds a path takes to answer, and how many of its requests were open at once.
    delays: dict[str, float] = field(default_factory=dict)
    open_now: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    most_open: dict[str, int] = field(default_factory=lambda: defaultdict(int))

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
        if path in self.delays:
            for key in (path, "*"):  # "*": across every delayed path
                self.open_now[key] += 1
                self.most_open[key] = max(self.most_open[key], self.open_now[key])
            try:
                await asyncio.sleep(self.delays[path])
            finally:
                for key in (path, "*"):
                    self.open_now[key] -= 1
        if self.scripts[path]:
            status, headers = self.scripts[path].popleft()
            return Response(f"scripted {status}", status_code=status, headers=headers)
        return Response("ok")

    async def start(self) -> Sink:
        app = Starlette(
            routes=[Route("/{rest:path}", self._receive, methods=["POST", "PUT", "GET"])]
        )
        self.server = await start_server(app, "127.0.0.1", 0, lifespan="off")
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
