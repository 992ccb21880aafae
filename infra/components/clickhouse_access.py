"""Database users for ClickHouse Cloud, converged on every `pulumi up` (a dynamic resource).

The cloud provider creates the service and its `default` (admin) user only. This resource uses
that admin connection, through clickhouse-connect, to:
1. apply the warehouse migrations (the same idempotent ones `salla-pipeline migrate` runs), so
   the pipeline's own user never needs DDL rights;
2. create the pipeline's writer (SELECT + INSERT on the database) and the app's reader (SELECT on
   the read-contract views and the versioned tables behind them, never the raw archive, which
   holds customer data), resetting their passwords on every run so a re-run converges.
Deleting the resource drops the two users; data is untouched.
"""

from __future__ import annotations

from typing import Any, Protocol

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

WRITER = "pipeline_writer"
READER = "app_reader"
VERSIONED_TABLES = (
    "order_versions",
    "order_item_sets",
    "product_versions",
    "customer_versions",
    "abandoned_cart_versions",
)


class SqlClient(Protocol):
    def command(self, sql: str) -> Any: ...

    def close(self) -> None: ...


def access_statements(database: str, writer_password: str, reader_password: str) -> list[str]:
    """The SQL that makes the users exist with exactly these rights (idempotent)."""
    from data_pipeline.adapters.clickhouse_schema import READ_CONTRACT

    def password(user: str, secret: str) -> list[str]:
        quoted = secret.replace("\\", "\\\\").replace("'", "\\'")
        return [
            f"CREATE USER IF NOT EXISTS {user} IDENTIFIED WITH sha256_password BY '{quoted}'",
            f"ALTER USER {user} IDENTIFIED WITH sha256_password BY '{quoted}'",
        ]

    statements = [
        *password(WRITER, writer_password),
        f"REVOKE ALL ON *.* FROM {WRITER}",
        f"GRANT SELECT, INSERT ON {database}.* TO {WRITER}",
        *password(READER, reader_password),
        f"REVOKE ALL ON *.* FROM {READER}",
    ]
    statements += [
        f"GRANT SELECT ON {database}.{table} TO {READER}"
        for table in (*READ_CONTRACT, *VERSIONED_TABLES)
    ]
    return statements


def _connect(admin_dsn: str) -> SqlClient:
    import clickhouse_connect

    return clickhouse_connect.get_client(dsn=admin_dsn, autogenerate_session_id=False)


class ClickHouseAccessProvider(ResourceProvider):
    connect = staticmethod(_connect)

    def _apply(self, props: dict[str, Any]) -> None:
        from data_pipeline.adapters.clickhouse_warehouse import ClickHouseWarehouse

        ClickHouseWarehouse(props["admin_dsn"], props["database"]).migrate()
        client = self.connect(props["admin_dsn"])
        try:
            for statement in access_statements(
                props["database"], props["writer_password"], props["reader_password"]
            ):
                client.command(statement)
        finally:
            client.close()

    def create(self, props: dict[str, Any]) -> CreateResult:
        self._apply(props)
        return CreateResult(id_=f"{props['database']}-access", outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("admin_dsn", "database", "writer_password", "reader_password", "schema_version")
        changed = [key for key in keys if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        self._apply(news)
        return UpdateResult(outs=news)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        client = self.connect(props["admin_dsn"])
        try:
            for user in (WRITER, READER):
                client.command(f"DROP USER IF EXISTS {user}")
        finally:
            client.close()


class ClickHouseAccess(pulumi.dynamic.Resource):
    def __init__(
        self,
        name: str,
        *,
        admin_dsn: pulumi.Input[str],
        database: str,
        writer_password: pulumi.Input[str],
        reader_password: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        from data_pipeline.adapters.clickhouse_schema import MIGRATIONS

        super().__init__(
            ClickHouseAccessProvider(),
            name,
            {
                "admin_dsn": pulumi.Output.secret(admin_dsn),
                "database": database,
                "writer_password": pulumi.Output.secret(writer_password),
                "reader_password": pulumi.Output.secret(reader_password),
                # A new migration changes this input, so `pulumi up` applies it.
                "schema_version": max(m.version for m in MIGRATIONS),
            },
            opts,
        )
