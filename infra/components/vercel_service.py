"""The service on Vercel: project, sensitive environment variables, production deployment, and
the warehouse migration run through the live deployment (components/deployed_migration.py).

No URL cycle here: a Vercel project's production URL is known from its name (or the configured
domain) before anything is created, so the environment and the QStash topics use it directly.
Egress: Vercel functions have no fixed IPs unless the team buys static egress (Secure Compute);
with Vercel, the ClickHouse allow list comes from `pipeline:clickhouse.allowedIps` (those static
IPs), which the program requires.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pulumi
import pulumiverse_vercel as vercel

from infra.bundle import ROOT
from infra.components.deployed_migration import DeployedMigration
from infra.components.lambda_service import MIGRATE_OPERATION
from infra.config import VercelConfig
from shared.contract import Role, secret_env_var_names
from shared.topics import MIGRATE_PATH


@dataclass
class VercelServiceArgs:
    config: VercelConfig
    project_name: str
    environment: Callable[[pulumi.Output[str], Role], dict[str, pulumi.Output[str]]]
    migration_credentials: pulumi.Output[dict[str, str]]
    schema_version: int
    api_key: pulumi.Output[str]


class VercelService(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: VercelServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("salla:infra:VercelService", name, None, opts)
        config = args.config
        child = pulumi.ResourceOptions(parent=self)
        self.endpoint = pulumi.Output.from_input(
            f"https://{config.domain or args.project_name + '.vercel.app'}"
        )
        self.project = vercel.Project(
            f"{name}-project",
            name=args.project_name,
            team_id=config.team_id,
            serverless_function_region=config.region,
            opts=child,
        )
        secret = secret_env_var_names()
        variables = [
            vercel.ProjectEnvironmentVariable(
                f"{name}-env-{key.lower().replace('_', '-')}",
                project_id=self.project.id,
                team_id=config.team_id,
                key=key,
                value=value,
                targets=["production"],
                sensitive=key in secret,
                opts=child,
            )
            # One Vercel project serves both intake and workers; QStash flow control keeps the
            # workers' share bounded (Vercel has no per-route concurrency to reserve).
            for key, value in args.environment(self.endpoint, Role.ALL).items()
        ]
        files = vercel.get_project_directory_output(path=str(ROOT)).files
        self.deployment = vercel.Deployment(
            f"{name}-deployment",
            project_id=self.project.id,
            team_id=config.team_id,
            files=files,
            production=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=variables),
        )
        request = args.migration_credentials.apply(
            lambda secret: json.dumps(
                {"operation": MIGRATE_OPERATION, "schemaVersion": args.schema_version, **secret}
            )
        )
        self.migration = DeployedMigration(
            f"{name}-migrate",
            url=pulumi.Output.concat(self.endpoint, MIGRATE_PATH),
            request=request,
            api_key=args.api_key,
            triggers={"schemaVersion": str(args.schema_version), "deployment": self.deployment.id},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.deployment]),
        )
        self.register_outputs({"endpoint": self.endpoint})
