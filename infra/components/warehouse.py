"""ClickHouse Cloud: the service, its backups and allow list, and least-privilege users.

Three generated passwords (pulumi-random, secret): the service's `default` admin user, the
pipeline's writer and the app's reader. The connection strings are secret outputs. The allow
list is the configured sources plus the deployed service's egress IPs, so the functions can
reach the warehouse and nothing else can, including the machine running `pulumi up`: the
deployment's migrator function creates the schema and the users (`migration_request`, handed to
it by the service component; docs/infrastructure.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random
import pulumiverse_clickhouse as clickhouse

from infra.config import ClickHouseConfig
from shared.contract import WAREHOUSE_READER, WAREHOUSE_WRITER


@dataclass
class WarehouseArgs:
    config: ClickHouseConfig
    egress_ips: pulumi.Input[list[str]]
    protect: bool


class Warehouse(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: WarehouseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("salla:infra:Warehouse", name, None, opts)
        config = args.config
        child = pulumi.ResourceOptions(parent=self)
        passwords = {
            role: random.RandomPassword(
                f"{name}-{role}-password", length=32, special=False, opts=child
            )
            for role in ("admin", "writer", "reader")
        }
        self.service = clickhouse.Service(
            f"{name}-service",
            name=name,
            cloud_provider=config.cloud_provider,
            region=config.region,
            tier=config.tier,
            min_replica_memory_gb=config.min_replica_memory_gb,
            max_replica_memory_gb=config.max_replica_memory_gb,
            num_replicas=config.num_replicas,
            idle_scaling=config.idle_scaling,
            idle_timeout_minutes=config.idle_timeout_minutes,
            password=passwords["admin"].result,
            ip_accesses=pulumi.Output.from_input(args.egress_ips).apply(
                lambda egress: _allow_list(config, egress)
            ),
            backup_configuration=clickhouse.ServiceBackupConfigurationArgs(
                backup_period_in_hours=config.backup_period_hours,
                backup_retention_period_in_hours=config.backup_retention_hours,
            ),
            backup_id=config.restore_from_backup_id,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        host = self.service.endpoints.apply(lambda endpoints: endpoints.https.host)
        port = self.service.endpoints.apply(lambda endpoints: endpoints.https.port or 8443)

        def dsn(user: str, password: pulumi.Output[str]) -> pulumi.Output[str]:
            return pulumi.Output.secret(
                pulumi.Output.format("https://{0}:{1}@{2}:{3}", user, password, host, port)
            )

        self.connection_string = dsn(WAREHOUSE_WRITER, passwords["writer"].result)
        self.read_only_connection_string = dsn(WAREHOUSE_READER, passwords["reader"].result)
        self.database = config.database
        # What the migrator needs, as one secret: the admin connection and the users' passwords.
        self.migration_credentials = pulumi.Output.secret(
            pulumi.Output.all(
                adminUrl=dsn("default", passwords["admin"].result),
                writerPassword=passwords["writer"].result,
                readerPassword=passwords["reader"].result,
            )
        )
        self.register_outputs(
            {
                "connection_string": self.connection_string,
                "read_only_connection_string": self.read_only_connection_string,
            }
        )


def _allow_list(
    config: ClickHouseConfig, egress: list[str]
) -> list[clickhouse.ServiceIpAccessArgs]:
    entries = [(ip, "service egress (NAT gateway)") for ip in egress]
    entries += [(ip, "configured (pipeline:clickhouse.allowedIps)") for ip in config.allowed_ips]
    if config.allow_anywhere:
        entries.append(("0.0.0.0/0", "anywhere (pipeline:clickhouse.allowAnywhere)"))
    if not entries:
        raise pulumi.RunError(
            "the ClickHouse allow list would be empty: set pipeline:clickhouse.allowedIps, "
            "enable pipeline:lambda.vpcEgress, or (dev only) pipeline:clickhouse.allowAnywhere"
        )
    seen: dict[str, str] = {}
    for source, description in entries:
        seen.setdefault(source if "/" in source else f"{source}/32", description)
    return [clickhouse.ServiceIpAccessArgs(source=s, description=d) for s, d in seen.items()]
