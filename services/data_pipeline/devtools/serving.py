"""Run ASGI apps under uvicorn inside our own event loop, with our own signal handling.

uvicorn's `Server.serve()` installs its handlers and re-raises the captured signal after a
graceful shutdown (so the process would die by SIGTERM, not exit 0). The local stack has to stop
its parts in a specific order, so the supervisor owns the signals and uvicorn gets none.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn


class SupervisedServer(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RunningServer:
    server: SupervisedServer
    task: asyncio.Task[None]
    host: str
    port: int

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting, finish in-flight requests (uvicorn's graceful shutdown), return."""
        self.server.should_exit = True
        await self.task


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before starting, so the final URL (needed by signature checks) is known up front."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


async def start_server(
    app: Any, host: str, port: int, *, lifespan: str = "on", sock: socket.socket | None = None
) -> RunningServer:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan=lifespan,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=30,
        http="httptools",
        proxy_headers=False,  # nothing sits in front locally; no per-request header rewriting
    )
    server = SupervisedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock] if sock is not None else None))
    while not server.started:
        if task.done():
            await task  # surfaces the start-up error (port in use, lifespan failure)
            raise RuntimeError(f"server on {host}:{port} stopped during start-up")
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return RunningServer(server=server, task=task, host=host, port=bound)


def wait_until_healthy(url: str, process: subprocess.Popen[Any], timeout: float = 90) -> None:
    """Block until `url` answers 2xx, or raise if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode} before ready")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).is_success:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} was not ready within {timeout:.0f} s")
