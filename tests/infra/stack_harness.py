"""Run the real Pulumi program under Pulumi's unit-test mocks and record what it declares.

Cloud providers cannot run here (no Pulumi CLI or plugins), so resources are created by
`pulumi.runtime.Mocks`; everything else is the real program, fed the committed stack files
(Pulumi.dev.yaml / Pulumi.prod.yaml) plus placeholder secrets. A stack transformation records
each resource's options (protect, retain) and raw inputs, which the mocks never see.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime.sync_await import _sync_await

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "pipeline:qstashToken": "qstash-token-value",
    "pipeline:qstashCurrentSigningKey": "sig_current_value",
    "pipeline:qstashNextSigningKey": "sig_next_value",
    "pipeline:sallaWebhookSecret": "salla-webhook-secret-value",
    "pipeline:sallaClientSecret": "salla-client-secret-value",
    "pipeline:openaiApiKey": "sk-openai-key-value",
    "pipeline:pineconeApiKey": "pinecone-api-key-value",
}
# Required per-stack settings that are not secret but have no sensible committed value.
REQUIRED = {"pipeline:sallaClientId": "salla-client-id"}


@dataclass
class Declared:
    typ: str
    name: str
    inputs: dict[str, Any]
    props: dict[str, Any] = field(default_factory=dict)
    protect: bool = False
    retain_on_delete: bool = False
    depends_on: list[str] = field(default_factory=list)  # names of explicit dependencies


@dataclass
class StackRun:
    resources: list[Declared]
    exports: dict[str, Any]
    secret_exports: set[str]

    def of_type(self, typ: str) -> list[Declared]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str) -> Declared:
        found = self.of_type(typ)
        assert len(found) == 1, f"{len(found)} resources of {typ}"
        return found[0]

    def named(self, typ: str, suffix: str) -> Declared:
        found = [r for r in self.of_type(typ) if r.name.endswith(suffix)]
        assert len(found) == 1, f"{len(found)} resources of {typ} named *{suffix}"
        return found[0]


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.created: list[tuple[str, str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        self.created.append((args.typ, args.name, dict(args.inputs)))
        extra: dict[str, dict[str, Any]] = {
            "aws:apigatewayv2/api:Api": {
                "apiEndpoint": f"https://{args.name}.execute-api.eu-central-1.amazonaws.com",
                "executionArn": f"arn:aws:execute-api:eu-central-1:123456789012:{args.name}",
            },
            "aws:lambda/function:Function": {
                "arn": f"arn:aws:lambda:eu-central-1:123456789012:function:{args.name}",
                "invokeArn": f"arn:aws:apigateway:eu-central-1:lambda:path/{args.name}",
            },
            "aws:cloudwatch/logGroup:LogGroup": {
                "arn": f"arn:aws:logs:eu-central-1:123456789012:log-group:{args.name}"
            },
            "aws:ec2/eip:Eip": {"publicIp": "203.0.113.9"},
            "aws:s3/bucket:Bucket": {"arn": f"arn:aws:s3:::{args.inputs.get('bucket', args.name)}"},
            "aws:kms/key:Key": {"arn": f"arn:aws:kms:eu-central-1:123456789012:key/{args.name}"},
            "clickhouse:index/service:Service": {
                "endpoints": {
                    "https": {"host": "abc123.eu-central-1.aws.clickhouse.cloud", "port": 8443}
                }
            },
            "upstash:index/redisDatabase:RedisDatabase": {
                "endpoint": "eu1-pipeline.upstash.io",
                "port": 6379,
                "password": "redis-password-value",
                "restToken": "redis-rest-token-value",
            },
            "random:index/randomPassword:RandomPassword": {
                "result": "p" * int(args.inputs.get("length", 16))
            },
            "pinecone:index/index:Index": {
                "host": f"{args.inputs.get('name', args.name)}-abc123.svc.aped-4627.pinecone.io"
            },
            "aws:iam/accessKey:AccessKey": {
                "id": "AKIAARCHIVEWRITER",
                "secret": "archive-writer-secret-value",
            },
            "random:index/randomBytes:RandomBytes": {
                "base64": base64.b64encode(b"\xfb" * 32).decode()
            },
        }
        outputs.update(extra.get(args.typ, {}))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        if args.token == "vercel:index/getProjectDirectory:getProjectDirectory":
            return {"path": str(ROOT), "files": {"api/index.py": "sha"}, "id": "dir"}
        if args.token == "aws:index/getRegion:getRegion":
            return {"region": "eu-central-1", "name": "eu-central-1", "id": "eu-central-1"}
        return {}


def stack_config(stack: str, overrides: dict[str, Any] | None = None) -> dict[str, str]:
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    values: dict[str, Any] = dict(document["config"])
    values.update(REQUIRED)
    values.update(overrides or {})
    config = {
        k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items() if v is not None
    }
    config.update(SECRETS)
    return config


def ensure_event_loop() -> None:
    """Pulumi's mocks run on the thread's current event loop; an async test that ran before
    (pytest-asyncio) may have left none."""
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


def run_stack(
    stack: str, overrides: dict[str, Any] | None = None, *, config_from: str | None = None
) -> StackRun:
    """Run infra.program under mocks as stack `stack` with Pulumi.<config_from or stack>.yaml
    (+ overrides, None deletes)."""
    from infra import program

    ensure_event_loop()
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="salla-data-pipeline", stack=stack, preview=False)
    config = stack_config(config_from or stack, overrides)
    for key in [k for k, v in (overrides or {}).items() if v is None]:
        config.pop(key, None)
    pulumi.runtime.set_all_config(config, secret_keys=list(SECRETS))
    declared: dict[tuple[str, str], Declared] = {}

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        opts = args.opts
        declared[(args.type_, args.name)] = Declared(
            args.type_,
            args.name,
            {},
            props=dict(args.props or {}),
            protect=bool(opts.protect),
            retain_on_delete=bool(opts.retain_on_delete),
            depends_on=[
                dependency.pulumi_resource_name
                for dependency in (opts.depends_on or [])
                if isinstance(dependency, pulumi.Resource)
            ],
        )

    pulumi.runtime.register_stack_transformation(record)
    exports: dict[str, Any] = {}
    original_export = pulumi.export
    pulumi.export = lambda name, value: exports.__setitem__(name, value)  # type: ignore[assignment]
    try:

        @pulumi.runtime.test
        def declare() -> Any:
            program.run()
            return pulumi.Output.all(*exports.values())

        declare()
    finally:
        pulumi.export = original_export  # type: ignore[assignment]
    values, secret = {}, set()
    for name, value in exports.items():
        output = pulumi.Output.from_input(value)
        values[name] = _sync_await(output.future())
        if _sync_await(output.is_secret()):
            secret.add(name)
    for typ, name, inputs in mocks.created:
        entry = declared.setdefault((typ, name), Declared(typ, name, {}))
        entry.inputs = inputs
    return StackRun(list(declared.values()), values, secret)


def is_secret(value: Any) -> bool:
    return bool(_sync_await(pulumi.Output.from_input(value).is_secret()))


def resolve(value: Any) -> Any:
    return _sync_await(pulumi.Output.from_input(value).future())
