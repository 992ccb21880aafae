"""The migrator: what the deployment invokes to converge the warehouse (schema, users, grants).

Migrations run for real (chDB through clickhouse-connect, the same code ClickHouse Cloud gets)
and the lease lives in a real redis-server. The user and grant statements cannot run here:
chDB's embedded engine has no access management ("Not enough privileges ... CREATE USER"), so
they go to a client that records them, and the tests check exactly what would be sent.
"""

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import clickhouse_connect
import pytest
from data_pipeline.adapters.clickhouse_access import access_statements
from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse
from data_pipeline.adapters.redis_state import RedisStateStore
from data_pipeline.entrypoints import migrate_handler
from data_pipeline.entrypoints.migrate_handler import InvalidEvent, migrate, parse_event
from data_pipeline.errors import PermanentError, TransientError
from data_pipeline.service_layer import schema
from data_pipeline.service_layer.schema import LATEST_SCHEMA_VERSION, LEASE, converge_warehouse

from shared.contract import WAREHOUSE_READER, WAREHOUSE_WRITER, MigratorSettings
from tests.support.harness import API_KEY

WRITER_PASSWORD = "w" * 32
READER_PASSWORD = "r" * 32


class RecordingClient:
    def __init__(self, pause: float = 0.0) -> None:
        self.statements: list[str] = []
        self.spans: list[tuple[float, float]] = []
        self._pause = pause

    def command(self, sql: str) -> None:
        if not self.statements:
            self.spans.append((time.monotonic(), 0.0))
        self.statements.append(sql)
        time.sleep(self._pause)

    def close(self) -> None:
        self.spans[-1] = (self.spans[-1][0], time.monotonic())


def event(chdb_path, **changes):
    return {
        "operation": "migrate-warehouse",
        "schemaVersion": LATEST_SCHEMA_VERSION,
        "adminUrl": f"chdb://{chdb_path}",
        "writerPassword": WRITER_PASSWORD,
        "readerPassword": READER_PASSWORD,
        **changes,
    }


@pytest.fixture
def database():
    return "mig_" + uuid.uuid4().hex[:10]


@pytest.fixture
def settings(redis_url, database):
    return MigratorSettings(redis_url=redis_url, clickhouse_database=database)


async def test_the_migrator_migrates_for_real_and_grants_least_privilege(
    chdb_path, settings, database, warehouse
):
    client = RecordingClient()
    report = await migrate(event(chdb_path), settings, connect=lambda dsn: client)
    assert report["schemaVersion"] == LATEST_SCHEMA_VERSION and report["applied"]
    tables = {
        row[0]
        for row in warehouse.query(
            "SELECT name FROM system.tables WHERE database = {db:String}", {"db": database}
        ).rows
    }
    assert {"orders", "sales_facts", "raw_events"} <= tables  # migrated for real
    sql = client.statements
    assert f"GRANT SELECT, INSERT ON {database}.* TO {WAREHOUSE_WRITER}" in sql
    reader_grants = [s for s in sql if s.endswith(f"TO {WAREHOUSE_READER}") and "GRANT" in s]
    assert f"GRANT SELECT ON {database}.orders TO {WAREHOUSE_READER}" in reader_grants
    assert not any("raw_events" in s or f"{database}.*" in s for s in reader_grants)
    assert not any("INSERT" in s for s in reader_grants)
    # Re-running converges: users are created if missing and their password is reset either way.
    assert any(s.startswith(f"ALTER USER {WAREHOUSE_WRITER} IDENTIFIED") for s in sql)
    # The app's reader runs with the settings its queries are designed for (this server has them).
    assert f"ALTER USER {WAREHOUSE_READER} MODIFY SETTINGS analyzer_inline_views = 1" in sql
    assert not any(WAREHOUSE_WRITER in s and "SETTINGS" in s for s in sql)
    again = await migrate(event(chdb_path), settings, connect=lambda dsn: RecordingClient())
    assert again["applied"] == []  # already current


async def test_a_server_without_a_reader_setting_still_gets_its_users(
    chdb_path, settings, monkeypatch
):
    # An older ClickHouse refuses a user setting it does not know: the migrator leaves it out.
    asked = []

    def known_settings(self, names):
        asked.extend(names)
        return frozenset()

    monkeypatch.setattr(ClickHouseWarehouse, "known_settings", known_settings)
    client = RecordingClient()
    await migrate(event(chdb_path), settings, connect=lambda dsn: client)
    assert asked == ["analyzer_inline_views"]
    assert not any(" SETTINGS " in s for s in client.statements)
    assert any(s.startswith(f"ALTER USER {WAREHOUSE_READER} IDENTIFIED") for s in client.statements)


async def test_two_deploys_never_migrate_at_once(chdb_path, redis_url, database):
    # Keys of this test's own (prefix): a failure here must not leave the lease to the next one.
    state = RedisStateStore(redis_url, prefix=database)
    clients = [RecordingClient(pause=0.01), RecordingClient(pause=0.01)]
    request = parse_event(event(chdb_path))
    try:
        outcomes = await asyncio.gather(
            *(
                converge_warehouse(
                    request, database=database, state=state, connect=lambda dsn, c=c: c,
                    poll_seconds=0.05,
                )
                for c in clients
            ),
            return_exceptions=True,  # both finish (and release the lease) before any is raised
        )  # fmt: skip
    finally:
        await state.close()
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    if failures:
        raise failures[0]
    reports = outcomes
    (_, first_end), (second_start, _) = sorted(span for client in clients for span in client.spans)
    assert second_start >= first_end  # the second waited for the lease
    assert max(report.waited_seconds for report in reports) > 0


async def test_a_held_lease_fails_the_deploy_with_the_reason(chdb_path, redis_url, database):
    state = RedisStateStore(redis_url, prefix=database)
    try:
        assert await state.acquire_lock(LEASE, "someone-else", 30)
        with pytest.raises(TransientError, match="another migration has held the warehouse lease"):
            await converge_warehouse(
                parse_event(event(chdb_path)),
                database=database,
                state=state,
                connect=lambda dsn: RecordingClient(),
                wait_seconds=0.3,
                poll_seconds=0.05,
            )
    finally:
        await state.release_lock(LEASE, "someone-else")
        await state.close()


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"operation": "drop-everything"}, "operation"),
        ({"schemaVersion": "three"}, "schemaVersion"),
        ({"writerPassword": "short"}, "writerPassword"),
        ({"adminUrl": None}, "adminUrl"),
        ({"extra": "field"}, "extra"),
    ],
)
def test_a_malformed_event_is_refused_by_name_without_echoing_secrets(chdb_path, changes, named):
    with pytest.raises(InvalidEvent, match=named) as refused:
        parse_event(event(chdb_path, **changes))
    assert "short" not in str(refused.value) and str(chdb_path) not in str(refused.value)


@pytest.mark.parametrize("raw", [None, [], "migrate", {"operation": "migrate-warehouse"}])
def test_events_that_are_not_objects_or_incomplete_are_refused(raw):
    with pytest.raises(InvalidEvent, match="not a migration request"):
        parse_event(raw)


async def test_a_deploy_for_another_schema_version_is_refused(chdb_path, settings):
    with pytest.raises(PermanentError, match="rebuild it"):
        await migrate(event(chdb_path, schemaVersion=LATEST_SCHEMA_VERSION + 1), settings)


def test_credentials_never_show_in_the_request_repr(chdb_path):
    request = parse_event(event(chdb_path))
    assert WRITER_PASSWORD not in repr(request) and "chdb" not in repr(request)


def test_passwords_are_quoted():
    statements = access_statements("analytics", "it's\\x", "plain")
    assert "BY 'it\\'s\\\\x'" in statements[0]


def test_every_access_statement_parses_in_clickhouse(chdb_path):
    # chDB cannot run them (no access management) but its parser is the server's: a statement
    # ClickHouse Cloud would refuse as a syntax error fails here.
    client = clickhouse_connect.get_client(dsn=f"chdb://{chdb_path}")
    hostile = 'it\'s\\ a "pass"\nword; DROP USER x'
    statements = access_statements("analytics", hostile, "r" * 32, {"analyzer_inline_views": 1})
    assert f"ALTER USER {WAREHOUSE_READER} MODIFY SETTINGS analyzer_inline_views = 1" in statements
    for statement in statements:
        [(kind, *_), *_] = client.query("EXPLAIN AST " + statement).result_rows
        assert kind.split()[0] in ("CreateUserQuery", "GrantQuery"), (kind, statement)


def test_the_migrator_refuses_to_start_without_its_state_store(tmp_path):
    environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    started = subprocess.run(
        [sys.executable, "-c", f"import {migrate_handler.__name__} as m; m.handler({{}}, None)"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )
    assert started.returncode == 1
    assert "REDIS_URL is required" in started.stdout + started.stderr


# -- the same operation over HTTPS, for deployments without a migrator function (Vercel) --------
async def test_the_service_migrates_on_request_with_its_key(harness, monkeypatch, chdb_path):
    client = RecordingClient()
    monkeypatch.setattr(schema, "connect_admin", lambda dsn: client)
    url = harness.url + "/api/ops/migrate"
    body = event(chdb_path)
    assert (await harness.http.post(url, json=body)).status_code == 401
    wrong = await harness.http.post(
        url, json=body, headers={"Authorization": f"Bearer {'x' * len(API_KEY)}"}
    )
    assert wrong.status_code == 401
    key = {"Authorization": f"Bearer {API_KEY}"}
    refused = await harness.http.post(url, json={**body, "writerPassword": "tiny"}, headers=key)
    assert refused.status_code == 422 and "writerPassword" in refused.text
    assert "tiny" not in refused.text and str(chdb_path) not in refused.text
    done = await harness.http.post(url, json=body, headers=key)
    assert done.status_code == 200, done.text
    assert done.json()["schemaVersion"] == LATEST_SCHEMA_VERSION
    assert json.dumps(done.json()).count("GRANT") == 0  # the report carries no SQL or secrets
    assert f"TO {WAREHOUSE_WRITER}" in " ".join(client.statements)


def test_the_reader_may_select_every_table_behind_the_contract(warehouse):
    """Views run with the reader's rights: each table a contract view reads must be granted."""
    import re

    from data_pipeline.adapters.clickhouse_schema import READ_CONTRACT

    db = warehouse.database
    definitions = warehouse.query(
        "SELECT name, create_table_query FROM system.tables"
        " WHERE database = {db:String} AND name IN {names:Array(String)}",
        {"db": db, "names": list(READ_CONTRACT)},
    ).rows
    assert len(definitions) == len(READ_CONTRACT)
    behind = {t for _, sql in definitions for t in re.findall(rf"\b{db}\.(\w+)", sql)}
    granted = {
        statement.rsplit(".", 1)[1].split(" ", 1)[0]
        for statement in access_statements(db, "w" * 32, "r" * 32)
        if statement.startswith("GRANT SELECT ON") and statement.endswith(WAREHOUSE_READER)
    }
    assert "order_lines_current" in behind
    assert behind <= granted, behind - granted
