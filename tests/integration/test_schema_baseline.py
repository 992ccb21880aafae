"""A new embedded database gets the baseline schema in one pass (clickhouse_baseline.py): it must be
exactly what the migrations make, committed as the dump writes it today, and complete itself
after a start cut short."""

import uuid

import clickhouse_connect
import pytest
from data_pipeline.adapters import clickhouse_warehouse
from data_pipeline.adapters.clickhouse_baseline import (
    BASELINE_FILE,
    PLACEHOLDER,
    dump_baseline,
    load_baseline,
)
from data_pipeline.adapters.clickhouse_schema import MIGRATIONS
from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse

REGENERATE = "python -m data_pipeline.adapters.clickhouse_baseline"


def _database(chdb_path, prefix):
    return ClickHouseWarehouse(f"chdb://{chdb_path}", f"{prefix}_{uuid.uuid4().hex[:10]}")


def schema(chdb_path, database):
    """Every object as ClickHouse states it (the database's name taken out), the versions the
    database records, and each table's row count."""
    client = clickhouse_connect.get_client(dsn=f"chdb://{chdb_path}")
    objects = {
        name: (engine, query.replace(f"{database}.", "DB."))
        for name, engine, query in client.query(
            "SELECT name, engine, create_table_query FROM system.tables"
            " WHERE database = {db:String}",
            parameters={"db": database},
        ).result_rows
    }
    versions = client.query(
        f"SELECT version, name FROM {database}.schema_migrations FINAL ORDER BY version"
    ).result_rows
    rows = {
        name: client.command(f"SELECT count() FROM {database}.`{name}`")
        for name, (engine, _) in objects.items()
        if "View" not in engine
    }
    return objects, versions, rows


def test_a_new_database_from_the_baseline_is_what_the_migrations_make(chdb_path):
    migrated = _database(chdb_path, "chain")
    assert len(migrated.migrate(baseline=False)) == len(MIGRATIONS)
    baselined = _database(chdb_path, "base")
    applied = baselined.migrate()
    assert applied == [f"{m.version:04d} {m.name}" for m in MIGRATIONS]
    expected = schema(chdb_path, migrated.database)
    assert schema(chdb_path, baselined.database) == expected
    assert len(expected[0]) == len(load_baseline().statements) + 1  # + schema_migrations
    assert baselined.migrate() == []


def test_the_committed_baseline_is_what_the_dump_writes_from_the_migrations(chdb_path):
    warehouse = ClickHouseWarehouse(f"chdb://{chdb_path}", PLACEHOLDER)
    try:
        warehouse.migrate(baseline=False)
        version = max(m.version for m in MIGRATIONS)
        dumped = dump_baseline(clickhouse_connect.get_client(dsn=f"chdb://{chdb_path}"), version)
    finally:
        warehouse.execute(f"DROP DATABASE {PLACEHOLDER}")
    assert BASELINE_FILE.read_text(encoding="utf-8") == dumped, (
        f"the baseline schema is not what the migrations make now: run `{REGENERATE}`"
    )


def test_a_start_cut_short_inside_the_baseline_is_completed_by_the_next(chdb_path):
    warehouse = _database(chdb_path, "cut")
    warehouse.execute(f"CREATE DATABASE {warehouse.database}")
    statements = load_baseline().for_database(warehouse.database)
    for statement in statements[: len(statements) // 2]:  # then the process died
        warehouse.execute(statement)
    assert len(warehouse.migrate()) == len(MIGRATIONS)
    migrated = _database(chdb_path, "whole")
    migrated.migrate(baseline=False)
    assert schema(chdb_path, warehouse.database) == schema(chdb_path, migrated.database)


def test_migrations_narrowed_below_the_baseline_run_one_by_one(chdb_path, monkeypatch):
    # How the tests of a migration build the layout before it.
    monkeypatch.setattr(clickhouse_warehouse, "MIGRATIONS", MIGRATIONS[:3])
    warehouse = _database(chdb_path, "narrow")
    assert [name[:4] for name in warehouse.migrate()] == ["0001", "0002", "0003"]
    assert warehouse.schema_version() == 3


def test_a_server_database_runs_the_migrations_not_the_baseline(monkeypatch, chdb_path):
    # The baseline is chDB's wording, checked against the chDB this repo pins; a server (other
    # versions, ClickHouse Cloud) always runs the migrations themselves.
    warehouse = _database(chdb_path, "server")
    warehouse.ping()  # connected as chDB, then taken for a server
    monkeypatch.setattr(ClickHouseWarehouse, "is_embedded", property(lambda _: False))
    monkeypatch.setattr(
        clickhouse_warehouse, "load_baseline", lambda: pytest.fail("a server used the baseline")
    )
    assert len(warehouse.migrate()) == len(MIGRATIONS)
