"""The service on Vercel: project, sensitive environment variables, production deployment.

No URL cycle here: a Vercel project's production URL is known from its name (or the configured
domain) before anything is created, so the environment and the QStash topics use it directly.
Egress: Vercel functions have no fixed IPs unless the team buys static egress (Secure Compute);
with Vercel, the ClickHouse allow list comes from `pipeline:clickhouse.allowedIps` (those static
IPs), which the program requires.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pulumi
import pulumiverse_vercel as vercel

from infra.bundle import ROOT
from infra.config import VercelConfig
from shared.contract import secret_env_var_names


@dataclass
class VercelServiceArgs:
    config: VercelConfig
    environment: Callable[[pulumi.Output[str]], dict[str, pulumi.Output[str]]]


class VercelService(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: VercelServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("salla:infra:VercelService", name, None, opts)
        config = args.config
        child = pulumi.ResourceOptions(parent=self)
        self.endpoint = pulumi.Output.from_input(
            f"https://{config.domain or config.project_name + '.vercel.app'}"
        )
        self.project = vercel.Project(
            f"{name}-project",
            name=config.project_name,
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
            for key, value in args.environment(self.endpoint).items()
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
        self.register_outputs({"endpoint": self.endpoint})
