"""The service on AWS Lambda (Python 3.12, arm64) behind an API Gateway HTTP API, via Mangum.

Breaking the URL cycle: the function's environment must contain its own public URL (QStash signs
deliveries for that exact URL, and the service checks it), and the QStash topic needs it too. A
Function URL only exists after the function, so it cannot appear in the function's environment.
An HTTP API's endpoint exists as soon as the API does: the API is created first, the function
gets `PIPELINE_PUBLIC_URL = api.api_endpoint`, and only the integration and route (which need
the function) come after it. QStash topics depend on the API endpoint, never on the function.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra.bundle import HANDLER, ROOT
from infra.components.network import Network
from infra.config import LambdaConfig


@dataclass
class LambdaServiceArgs:
    config: LambdaConfig
    # Given the public base URL, the function's environment (see infra/function_environment.py).
    environment: Callable[[pulumi.Output[str]], dict[str, pulumi.Output[str]]]
    network: Network | None


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

        self.api = aws.apigatewayv2.Api(f"{name}-api", protocol_type="HTTP", opts=child)
        self.endpoint = self.api.api_endpoint
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/lambda/{name}",
            retention_in_days=config.log_retention_days,
            opts=child,
        )
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
        aws.iam.RolePolicy(
            f"{name}-policy",
            role=self.role.id,
            policy=self.log_group.arn.apply(lambda arn: _least_privilege(arn, args.network)),
            opts=child,
        )
        vpc_config = None
        if args.network is not None:
            vpc_config = aws.lambda_.FunctionVpcConfigArgs(
                subnet_ids=[subnet.id for subnet in args.network.private_subnets],
                security_group_ids=[args.network.function_security_group.id],
            )
        self.function = aws.lambda_.Function(
            f"{name}-function",
            name=name,
            runtime="python3.12",
            architectures=["arm64"],
            handler=HANDLER,
            code=pulumi.FileArchive(str(Path(bundle))),
            role=self.role.arn,
            memory_size=config.memory_mb,
            timeout=config.timeout_seconds,
            reserved_concurrent_executions=config.reserved_concurrency,
            environment=aws.lambda_.FunctionEnvironmentArgs(
                variables=args.environment(self.endpoint)
            ),
            vpc_config=vpc_config,
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(
                log_format="Text", log_group=self.log_group.name
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.log_group]),
        )
        integration = aws.apigatewayv2.Integration(
            f"{name}-integration",
            api_id=self.api.id,
            integration_type="AWS_PROXY",
            integration_uri=self.function.invoke_arn,
            payload_format_version="2.0",
            timeout_milliseconds=config.timeout_seconds * 1000,
            opts=child,
        )
        route = aws.apigatewayv2.Route(
            f"{name}-route",
            api_id=self.api.id,
            route_key="$default",
            target=integration.id.apply(lambda id_: f"integrations/{id_}"),
            opts=child,
        )
        aws.apigatewayv2.Stage(
            f"{name}-stage",
            api_id=self.api.id,
            name="$default",
            auto_deploy=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[route]),
        )
        aws.lambda_.Permission(
            f"{name}-invoke",
            action="lambda:InvokeFunction",
            function=self.function.name,
            principal="apigateway.amazonaws.com",
            source_arn=self.api.execution_arn.apply(lambda arn: f"{arn}/*/*"),
            opts=child,
        )
        self.register_outputs({"endpoint": self.endpoint})


def _least_privilege(log_group_arn: str, network: Network | None) -> str:
    statements = [
        {
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [f"{log_group_arn}:*"],
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
