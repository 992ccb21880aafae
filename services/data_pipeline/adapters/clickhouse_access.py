"""Database users on ClickHouse Cloud: the SQL that makes them exist with exactly these rights.

The cloud provider creates the service and its `default` (admin) user only. The migrator
(entrypoints/migrate_handler.py) runs these with the admin connection after the migrations:
the pipeline's writer (SELECT + INSERT on the database: no DDL, so the service itself can never
alter the schema) and the app's reader (SELECT on the read-contract views and the versioned
tables behind them, never the raw archive, which holds customer data). Passwords are reset on
every run, so a re-run converges. Idempotent.

The reader also gets the settings the app's queries should run with (`READER_SETTINGS`), as
user settings, so a plain `SELECT` from any client of the app gets them without asking.
"""

from __future__ import annotations

from collections.abc import Mapping

from data_pipeline.adapters.clickhouse_current import CURRENT_TABLES
from data_pipeline.adapters.clickhouse_schema import READ_CONTRACT

# Behind the views (views run with the reader's rights): the current state and its history.
VERSIONED_TABLES = (
    *(table.source for table in CURRENT_TABLES),
    *(table.name for table in CURRENT_TABLES),
    *(table.lines for table in CURRENT_TABLES if table.lines),
)


# The read contract is views. ClickHouse plans a named view as a subquery with its own analysis,
# which on a query the floor answers in ~5 ms costs ~1-1.5 ms before a row is read (docs/
# benchmarks.md); `analyzer_inline_views` (ClickHouse 26.4+) puts the view's definition in the
# query instead. It changes the plan, not the answer: the contract's exactness tests run with it.
READER_SETTINGS: dict[str, int] = {"analyzer_inline_views": 1}


def access_statements(
    database: str,
    writer_password: str,
    reader_password: str,
    reader_settings: Mapping[str, int] | None = None,
) -> list[str]:
    """`reader_settings`: those of `READER_SETTINGS` the server knows (an older server refuses a
    user with a setting it has never heard of); none leaves the reader's settings alone."""
    # Here, not at the top: the warehouse adapter imports this module for `READER_SETTINGS`,
    # and the settings contract's pydantic-settings cost every command line start 0.06 s.
    from shared.contract import WAREHOUSE_READER, WAREHOUSE_WRITER

    def password(user: str, secret: str) -> list[str]:
        quoted = secret.replace("\\", "\\\\").replace("'", "\\'")
        return [
            f"CREATE USER IF NOT EXISTS {user} IDENTIFIED WITH sha256_password BY '{quoted}'",
            f"ALTER USER {user} IDENTIFIED WITH sha256_password BY '{quoted}'",
        ]

    statements = [
        *password(WAREHOUSE_WRITER, writer_password),
        f"REVOKE ALL ON *.* FROM {WAREHOUSE_WRITER}",
        f"GRANT SELECT, INSERT ON {database}.* TO {WAREHOUSE_WRITER}",
        *password(WAREHOUSE_READER, reader_password),
        f"REVOKE ALL ON *.* FROM {WAREHOUSE_READER}",
    ]
    if reader_settings:
        pairs = ", ".join(f"{name} = {int(value)}" for name, value in reader_settings.items())
        # MODIFY: the user keeps any other setting or profile an operator gave it (a bare
        # SETTINGS clause would replace them all).
        statements.append(f"ALTER USER {WAREHOUSE_READER} MODIFY SETTINGS {pairs}")
    statements += [
        f"GRANT SELECT ON {database}.{table} TO {WAREHOUSE_READER}"
        for table in (*READ_CONTRACT, *VERSIONED_TABLES)
    ]
    return statements
