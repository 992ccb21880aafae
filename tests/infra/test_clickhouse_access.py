"""The dynamic resource that migrates the warehouse and converges its users.

Migrations run for real (chDB through clickhouse-connect, the same code ClickHouse Cloud gets).
The user and grant statements cannot: chDB's embedded engine has no access management, so they
go to a client that records them, and the test checks exactly what would be sent.
"""

import uuid

import pytest

from infra.components.clickhouse_access import (
    READER,
    WRITER,
    ClickHouseAccessProvider,
    access_statements,
)


class RecordingClient:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def command(self, sql: str) -> None:
        self.statements.append(sql)

    def close(self) -> None:
        pass


@pytest.fixture
def provider_and_client():
    client = RecordingClient()

    class Provider(ClickHouseAccessProvider):
        connect = staticmethod(lambda dsn: client)

    return Provider(), client


def props(chdb_path, **changes):
    base = {
        "admin_dsn": f"chdb://{chdb_path}",
        "database": "acc_" + uuid.uuid4().hex[:8],
        "writer_password": "w" * 32,
        "reader_password": "r" * 32,
        "schema_version": 2,
    }
    return {**base, **changes}


def test_create_migrates_and_grants_least_privilege(provider_and_client, chdb_path, warehouse):
    provider, client = provider_and_client
    inputs = props(chdb_path)
    result = provider.create(inputs)
    assert result.id == f"{inputs['database']}-access"
    db = inputs["database"]
    tables = {
        r[0]
        for r in warehouse.query(
            "SELECT name FROM system.tables WHERE database = {db:String}", {"db": db}
        ).rows
    }
    assert {"orders", "sales_facts", "raw_events"} <= tables  # migrated for real
    sql = client.statements
    assert f"GRANT SELECT, INSERT ON {db}.* TO {WRITER}" in sql
    reader_grants = [s for s in sql if s.endswith(f"TO {READER}") and s.startswith("GRANT")]
    assert f"GRANT SELECT ON {db}.orders TO {READER}" in reader_grants
    assert not any("raw_events" in s or f"{db}.*" in s for s in reader_grants)
    assert not any("INSERT" in s for s in reader_grants)
    # Re-running converges: users are created if missing and their password is reset either way.
    assert any(s.startswith(f"ALTER USER {WRITER} IDENTIFIED") for s in sql)


def test_diff_detects_password_database_and_schema_changes(provider_and_client, chdb_path):
    provider, _ = provider_and_client
    old = props(chdb_path)
    assert not provider.diff("id", old, dict(old)).changes
    assert provider.diff("id", old, {**old, "writer_password": "x" * 32}).changes
    assert provider.diff("id", old, {**old, "schema_version": 3}).changes


def test_delete_drops_only_the_users(provider_and_client, chdb_path):
    provider, client = provider_and_client
    provider.delete("id", props(chdb_path))
    assert client.statements == [f"DROP USER IF EXISTS {WRITER}", f"DROP USER IF EXISTS {READER}"]


def test_passwords_are_quoted():
    statements = access_statements("analytics", "it's\\x", "plain")
    assert "BY 'it\\'s\\\\x'" in statements[0]
