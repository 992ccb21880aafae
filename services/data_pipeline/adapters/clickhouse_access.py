"""Database users on ClickHouse Cloud: the SQL that makes them exist with exactly these rights.

The cloud provider creates the service and its `default` (admin) user only. The migrator
(entrypoints/migrate_handler.py) runs these with the admin connection after the migrations:
the pipeline's writer (SELECT + INSERT on the database: no DDL, so the service itself can never
alter the schema) and the app's reader (SELECT on the read-contract views and the versioned
tables behind them, never the raw archive, which holds customer data). Passwords are reset on
every run, so a re-run converges. Idempotent.
"""

from __future__ import annotations

from data_pipeline.adapters.clickhouse_current import CURRENT_TABLES
from data_pipeline.adapters.clickhouse_schema import READ_CONTRACT
from shared.contract import WAREHOUSE_READER, WAREHOUSE_WRITER

# Behind the views (views run with the reader's rights): the current state and its history.
VERSIONED_TABLES = (
    *(table.source for table in CURRENT_TABLES),
    *(table.name for table in CURRENT_TABLES),
    *(table.lines for table in CURRENT_TABLES if table.lines),
)


def access_statements(database: str, writer_password: str, reader_password: str) -> list[str]:
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
    statements += [
        f"GRANT SELECT ON {database}.{table} TO {WAREHOUSE_READER}"
        for table in (*READ_CONTRACT, *VERSIONED_TABLES)
    ]
    return statements
