"""Start and stop the local QStash-compatible server (in-process or via `qstash-dev`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from data_pipeline.devtools.qstash_server.app import ServerState, create_qstash_app
from data_pipeline.devtools.qstash_server.dispatcher import Dispatcher
from data_pipeline.devtools.qstash_server.schedules import Scheduler
from data_pipeline.devtools.qstash_server.store import FINISHED_RETENTION_MS, QStashStore
from data_pipeline.devtools.serving import RunningServer, start_server
from shared.dev_credentials import (
    DEV_QSTASH_CURRENT_SIGNING_KEY,
    DEV_QSTASH_NEXT_SIGNING_KEY,
    DEV_QSTASH_TOKEN,
)


@dataclass
class QStashDevConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    token: str = DEV_QSTASH_TOKEN
    current_signing_key: str = DEV_QSTASH_CURRENT_SIGNING_KEY
    next_signing_key: str = DEV_QSTASH_NEXT_SIGNING_KEY
    concurrency: int = 128  # reported as the global parallelism maximum
    hold: bool = False
    max_body_bytes: int = 10 * 1024 * 1024
    finished_retention_ms: int = FINISHED_RETENTION_MS
    # QStash's clock relative to ours: tokens are stamped at QStash's "now" in whole seconds, so a
    # worker whose clock lags sees `iat`/`nbf` in its future (tests set a positive skew).
    clock_skew_seconds: int = 0
    # Destination prefix → where to deliver instead (tests stand in for external hosts).
    routes: dict[str, str] = field(default_factory=dict)


@dataclass
class QStashDevServer:
    config: QStashDevConfig
    state: ServerState | None = None
    _running: RunningServer | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self._running is not None, "server not started"
        return self._running.url

    async def start(self) -> QStashDevServer:
        config = self.config
        store = QStashStore(
            config.data_dir / "qstash.sqlite3", retention_ms=config.finished_retention_ms
        )
        keys = [config.current_signing_key, config.next_signing_key]
        dispatcher = Dispatcher(
            store,
            lambda: keys[0],
            concurrency=config.concurrency,
            hold=config.hold,
            routes=config.routes,
            clock_skew_seconds=config.clock_skew_seconds,
        )
        self.state = ServerState(
            store=store,
            dispatcher=dispatcher,
            token=config.token,
            keys=keys,
            max_body_bytes=config.max_body_bytes,
        )
        self.state.scheduler = Scheduler(self.state)
        app = create_qstash_app(self.state)
        self._running = await start_server(app, config.host, config.port, lifespan="off")
        dispatcher.start()
        self.state.scheduler.start()
        return self

    async def stop(self) -> None:
        """Finish in-flight deliveries, stop accepting, keep everything pending on disk."""
        if self.state is None or self._running is None:
            return
        if self.state.scheduler is not None:
            await self.state.scheduler.stop()
        await self.state.dispatcher.stop()
        await self._running.stop()
        self.state.store.close()
        self.state = None
