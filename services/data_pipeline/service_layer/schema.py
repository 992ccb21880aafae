"""Converge the warehouse on a deploy: migrations, then users and grants, under a lease.

Runs where the network reaches ClickHouse (the migrator function, inside the deployment's VPC,
whose NAT address is on the warehouse allow list; see docs/infrastructure.md), never from the
machine running `pulumi up`. The lease (in the shared state store) makes a second deploy, or a
retried invocation, wait for the first instead of migrating at the same time; it expires on its
own if its holder dies.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from data_pipeline.adapters.clickhouse_access import READER_SETTINGS, access_statements
from data_pipeline.adapters.clickhouse_schema import MIGRATIONS
from data_pipeline.adapters.state import StateStore
from data_pipeline.errors import PermanentError, TransientError

LEASE = "warehouse-migration"
LATEST_SCHEMA_VERSION = max(migration.version for migration in MIGRATIONS)


class SqlClient(Protocol):
    def command(self, sql: str) -> Any: ...

    def close(self) -> None: ...


def connect_admin(dsn: str) -> SqlClient:
    import clickhouse_connect

    client: SqlClient = clickhouse_connect.get_client(dsn=dsn, autogenerate_session_id=False)
    return client


@dataclass(frozen=True)
class MigrationRequest:
    schema_version: int
    admin_url: str
    writer_password: str
    reader_password: str

    def __repr__(self) -> str:  # never the credentials
        return f"MigrationRequest(schema_version={self.schema_version})"


@dataclass(frozen=True)
class MigrationReport:
    schema_version: int
    applied: list[str]
    statements: int
    waited_seconds: float


async def converge_warehouse(
    request: MigrationRequest,
    *,
    database: str,
    state: StateStore,
    connect: Callable[[str], SqlClient] | None = None,
    lease_seconds: float = 900.0,
    wait_seconds: float = 300.0,
    poll_seconds: float = 2.0,
) -> MigrationReport:
    """Raises PermanentError for a request this code cannot serve, TransientError when the
    lease stays taken or the warehouse is unreachable (the deploy fails; re-run it)."""
    if request.schema_version != LATEST_SCHEMA_VERSION:
        raise PermanentError(
            f"the deploy asks for schema version {request.schema_version} but the deployed "
            f"bundle migrates to {LATEST_SCHEMA_VERSION}: rebuild it (make bundle) and deploy again"
        )
    owner = uuid.uuid4().hex
    started = time.monotonic()
    while not await state.acquire_lock(LEASE, owner, lease_seconds):
        if time.monotonic() - started > wait_seconds:
            raise TransientError(
                f"another migration has held the warehouse lease for over {wait_seconds:.0f} s"
            )
        await asyncio.sleep(poll_seconds)
    waited = time.monotonic() - started
    try:
        applied, statements = await asyncio.to_thread(
            _converge, request, database, connect or connect_admin
        )
    finally:
        await state.release_lock(LEASE, owner)
    return MigrationReport(LATEST_SCHEMA_VERSION, applied, statements, waited)


def _converge(
    request: MigrationRequest, database: str, connect: Callable[[str], SqlClient]
) -> tuple[list[str], int]:
    from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse

    warehouse = ClickHouseWarehouse(request.admin_url, database)
    try:
        applied = warehouse.migrate()
        known = warehouse.known_settings(READER_SETTINGS)
    finally:
        warehouse.close()
    statements = access_statements(
        database,
        request.writer_password,
        request.reader_password,
        {name: value for name, value in READER_SETTINGS.items() if name in known},
    )
    client = connect(request.admin_url)
    try:
        for statement in statements:
            client.command(statement)
    finally:
        client.close()
    return applied, len(statements)
