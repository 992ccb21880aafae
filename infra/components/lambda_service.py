"""The service on AWS Lambda (Python 3.12, arm64) behind one API Gateway HTTP API, via Mangum.

Three functions from one bundle, so that no kind of work can starve another:
- intake (`PIPELINE_ROLE=intake`): `POST /api/webhooks/salla` only, with its own reserved
  concurrency. Salla retries a failed webhook only a few times; a backfill, a DLQ replay or a
  burst of deliveries must never take its slots.
- worker (`PIPELINE_ROLE=worker`): every other route (QStash deliveries, the app's API). QStash
  flow control keeps its deliveries below this function's reserved concurrency.
- migrator: no route. The deployment invokes it (`aws.lambda_.Invocation`) before the other two
  are updated: it runs inside the VPC, whose NAT address the warehouse admits, and converges the
  schema and the database users under a lease (entrypoints/migrate_handler.py). Its reserved
  concurrency of 1 and the lease keep two deploys from migrating at once.

Breaking the URL cycle: a function's environment must contain the public URL (QStash signs
deliveries for that exact URL, and the service checks it), and the QStash topics need it too.
The API is created first, its endpoint goes into the environment, and only the integrations and
routes (which need the functions) come after it. Topics depend on the endpoint, never on a
function.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra.bundle import HANDLER, MIGRATOR_HANDLER, ROOT
from infra.components.network import Network
from infra.config import LambdaConfig
from shared.contract import Role
from shared.topics import WEBHOOK_PATH

MIGRATE_OPERATION = "migrate-warehouse"


@dataclass
class LambdaServiceArgs:
    config: LambdaConfig
    # Given the public base URL and a role, a function's environment (infra/function_environment).
    environment: Callable[[pulumi.Output[str], Role], dict[str, pulumi.Output[str]]]
    migrator_environment: dict[str, pulumi.Output[str]]
    # The migration's secret part: {adminUrl, writerPassword, readerPassword}.
    migration_credentials: pulumi.Output[dict[str, str]]
    schema_version: int
    network: Network | None
    archive_writer_policy: pulumi.Output[str]  # the raw archive's write-only grant


class LambdaService(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: LambdaServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("salla:infra:LambdaService", name, None, opts)
        config = args.config
        child = pulumi.ResourceOptions(parent=self)
        bundle = ROOT / config.bundle_path
        if not bundle.exists():
            raise pulumi.RunError(f"{bundle} is missing: run `make bundle` before preview/up")
        self._name, self._args, self._bundle = name, args, bundle
        self._code = pulumi.FileArchive(str(Path(bundle)))

        self.api = aws.apigatewayv2.Api(f"{name}-api", protocol_type="HTTP", opts=child)
        self.endpoint = self.api.api_endpoint
        self.role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "sts:AssumeRole",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                        }
                    ],
                }
            ),
            opts=child,
        )
        functions = ("intake", "worker", "migrator")
        self.log_groups = {
            function: aws.cloudwatch.LogGroup(
                f"{name}-{function}-logs",
                name=f"/aws/lambda/{name}-{function}",
                retention_in_days=config.log_retention_days,
                opts=child,
            )
            for function in functions
        }
        policy = aws.iam.RolePolicy(
            f"{name}-policy",
            role=self.role.id,
            policy=pulumi.Output.all(*(g.arn for g in self.log_groups.values())).apply(
                lambda arns: _least_privilege(arns, args.network)
            ),
            opts=child,
        )
        archive_grant = aws.iam.RolePolicy(
            f"{name}-archive-writer",
            role=self.role.id,
            policy=args.archive_writer_policy,
            opts=child,
        )
        self.migrator = self._function(
            "migrator",
            handler=MIGRATOR_HANDLER,
            environment=args.migrator_environment,
            timeout=config.migrator_timeout_seconds,
            concurrency=1,
            depends_on=[policy, archive_grant],
        )
        self.migration = aws.lambda_.Invocation(
            f"{name}-migrate",
            function_name=self.migrator.name,
            input=pulumi.Output.secret(
                args.migration_credentials.apply(
                    lambda secret: json.dumps(
                        {
                            "operation": MIGRATE_OPERATION,
                            "schemaVersion": args.schema_version,
                            **secret,
                        }
                    )
                )
            ),
            # Every deploy of new code converges again (idempotent: no-op migrations, users and
            # grants reset), so a missed or failed run never leaves the schema behind the code.
            triggers={
                "schemaVersion": str(args.schema_version),
                "bundle": hashlib.sha256(bundle.read_bytes()).hexdigest(),
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                # The migrator leaves through the NAT gateway: its routes must exist first.
                depends_on=[self.migrator, *(args.network.egress_ready if args.network else [])],
            ),
        )
        # Serving functions change only after the warehouse is at the schema their code needs.
        after_migration = [policy, self.migration]
        self.intake = self._function(
            "intake",
            handler=HANDLER,
            environment=args.environment(self.endpoint, Role.INTAKE),
            timeout=config.timeout_seconds,
            concurrency=config.intake_concurrency,
            depends_on=after_migration,
        )
        self.worker = self._function(
            "worker",
            handler=HANDLER,
            environment=args.environment(self.endpoint, Role.WORKER),
            timeout=config.timeout_seconds,
            concurrency=config.worker_concurrency,
            depends_on=after_migration,
        )
        routes = [
            self._route("intake", self.intake, f"POST {WEBHOOK_PATH}"),
            self._route("worker", self.worker, "$default"),
        ]
        aws.apigatewayv2.Stage(
            f"{name}-stage",
            api_id=self.api.id,
            name="$default",
            auto_deploy=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=routes),
        )
        self.register_outputs({"endpoint": self.endpoint})

    def _function(
        self,
        function: str,
        *,
        handler: str,
        environment: dict[str, pulumi.Output[str]],
        timeout: int,
        concurrency: int,
        depends_on: list[pulumi.Resource],
    ) -> aws.lambda_.Function:
        network = self._args.network
        vpc_config = None
        if network is not None:
            vpc_config = aws.lambda_.FunctionVpcConfigArgs(
                subnet_ids=[subnet.id for subnet in network.private_subnets],
                security_group_ids=[network.function_security_group.id],
            )
        log_group = self.log_groups[function]
        return aws.lambda_.Function(
            f"{self._name}-{function}",
            name=f"{self._name}-{function}",
            runtime="python3.12",
            architectures=["arm64"],
            handler=handler,
            code=self._code,
            role=self.role.arn,
            memory_size=self._args.config.memory_mb,
            timeout=timeout,
            reserved_concurrent_executions=concurrency,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables=environment),
            vpc_config=vpc_config,
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(
                log_format="Text", log_group=log_group.name
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group, *depends_on]),
        )

    def _route(
        self, function: str, target: aws.lambda_.Function, route_key: str
    ) -> aws.apigatewayv2.Route:
        child = pulumi.ResourceOptions(parent=self)
        integration = aws.apigatewayv2.Integration(
            f"{self._name}-{function}-integration",
            api_id=self.api.id,
            integration_type="AWS_PROXY",
            integration_uri=target.invoke_arn,
            payload_format_version="2.0",
            timeout_milliseconds=self._args.config.timeout_seconds * 1000,
            opts=child,
        )
        aws.lambda_.Permission(
            f"{self._name}-{function}-invoke",
            action="lambda:InvokeFunction",
            function=target.name,
            principal="apigateway.amazonaws.com",
            source_arn=self.api.execution_arn.apply(lambda arn: f"{arn}/*/*"),
            opts=child,
        )
        return aws.apigatewayv2.Route(
            f"{self._name}-{function}-route",
            api_id=self.api.id,
            route_key=route_key,
            target=integration.id.apply(lambda id_: f"integrations/{id_}"),
            opts=child,
        )


def _least_privilege(log_group_arns: list[str], network: Network | None) -> str:
    statements = [
        {
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [f"{arn}:*" for arn in log_group_arns],
        }
    ]
    if network is not None:
        # ENI management for VPC functions; AWS does not scope these actions by resource.
        statements.append(
            {
                "Sid": "VpcNetworkInterfaces",
                "Effect": "Allow",
                "Action": [
                    "ec2:CreateNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                "Resource": "*",
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})
