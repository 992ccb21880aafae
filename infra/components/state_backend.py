"""The remote state backend: an S3 bucket for Pulumi state and a DynamoDB table for the lock.

Both are protected and retained on delete: losing either loses every stack's state (or lets two
deploys race). The bucket is versioned with object lock, KMS-encrypted with a rotating key,
closed to the public, TLS-only, and expires old versions after a retention period. The table has
deletion protection and point-in-time recovery. Pulumi's S3 backend does not lock through
DynamoDB itself; `infra.deploy` takes a lease in this table around every `pulumi up`/`preview`.

One stack must never be able to read another's secrets (a dev deploy or preview runs code that
prod's reviewers have not approved): each stack gets its own KMS key for its Pulumi secrets
(`--secrets-provider awskms://alias/pulumi-secrets-<stack>`) and a managed IAM policy to attach
to that stack's CI role, which reaches only that stack's state objects, its own key and its own
deploy lease (docs/infrastructure.md, "Continuous delivery").
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.s3_buckets import secured_bucket


@dataclass
class StateBackendArgs:
    bucket_name: str
    lock_table_name: str
    noncurrent_version_days: int = 365
    object_lock_days: int = 30
    stacks: tuple[str, ...] = ("dev", "prod")
    project: str = "salla-data-pipeline"


class StateBackend(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: StateBackendArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("salla:infra:StateBackend", name, None, opts)
        keep = pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True)
        child = pulumi.ResourceOptions(parent=self)

        self.key = aws.kms.Key(
            f"{name}-key",
            description="Pulumi state encryption",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            opts=keep,
        )
        # Stacks encrypt their secrets with this key: `--secrets-provider awskms://alias/pulumi-state`.
        self.alias = aws.kms.Alias(
            f"{name}-key-alias",
            name="alias/pulumi-state",
            target_key_id=self.key.key_id,
            opts=child,
        )
        self.bucket, self.public_access_block = secured_bucket(
            name,
            args.bucket_name,
            self.key,
            lock_days=args.object_lock_days,
            keep=keep,
            child=child,
        )
        bucket = self.bucket.id
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket,
            rules=[
                {
                    "id": "expire-old-state-versions",
                    "status": "Enabled",
                    "filter": {},
                    "noncurrent_version_expiration": {
                        "noncurrent_days": args.noncurrent_version_days
                    },
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                }
            ],
            opts=child,
        )
        self.lock_table = aws.dynamodb.Table(
            f"{name}-locks",
            name=args.lock_table_name,
            billing_mode="PAY_PER_REQUEST",
            hash_key="LockID",
            attributes=[{"name": "LockID", "type": "S"}],
            ttl={"attribute_name": "ExpiresAt", "enabled": True},
            deletion_protection_enabled=True,
            point_in_time_recovery={"enabled": True},
            server_side_encryption={"enabled": True, "kms_key_arn": self.key.arn},
            opts=keep,
        )
        self.secrets_keys: dict[str, aws.kms.Key] = {}
        self.stack_policies: dict[str, aws.iam.Policy] = {}
        for stack in args.stacks:
            secrets_key = aws.kms.Key(
                f"{name}-{stack}-secrets",
                description=f"Pulumi secrets of stack {args.project}/{stack}",
                enable_key_rotation=True,
                deletion_window_in_days=30,
                opts=keep,
            )
            aws.kms.Alias(
                f"{name}-{stack}-secrets-alias",
                name=f"alias/pulumi-secrets-{stack}",
                target_key_id=secrets_key.key_id,
                opts=child,
            )
            self.secrets_keys[stack] = secrets_key
            self.stack_policies[stack] = aws.iam.Policy(
                f"{name}-{stack}-access",
                name=f"pulumi-stack-{args.project}-{stack}",
                description=f"State, secrets key and deploy lease of {args.project}/{stack} only",
                policy=pulumi.Output.all(
                    self.bucket.arn, self.key.arn, secrets_key.arn, self.lock_table.arn
                ).apply(lambda arns, s=stack: stack_access_policy(*arns, args.project, s)),
                opts=child,
            )
        self.register_outputs(
            {
                "bucket": self.bucket.bucket,
                "lock_table": self.lock_table.name,
                "kms_key": self.key.arn,
            }
        )


def stack_access_policy(
    bucket_arn: str,
    state_key_arn: str,
    secrets_key_arn: str,
    table_arn: str,
    project: str,
    stack: str,
) -> str:
    """What one stack's deploy (or preview) role needs from the backend, and nothing of the
    others: its own state files (Pulumi's S3 layout), its own secrets key, its own lease."""
    state = [
        f"{bucket_arn}/.pulumi/stacks/{project}/{stack}.json*",
        f"{bucket_arn}/.pulumi/history/{project}/{stack}/*",
        f"{bucket_arn}/.pulumi/backups/{project}/{stack}/*",
        f"{bucket_arn}/.pulumi/locks/{project}/{stack}/*",
    ]
    statements = [
        {
            "Sid": "OwnStateFiles",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": state,
        },
        {
            "Sid": "BackendMetadata",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [f"{bucket_arn}/.pulumi/meta.yaml"],
        },
        {
            "Sid": "ListStateNames",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [bucket_arn],
            "Condition": {"StringLike": {"s3:prefix": [".pulumi/*"]}},
        },
        {
            # The bucket's SSE-KMS key: needed to read any object, whose paths are limited above.
            "Sid": "StateEncryption",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
            "Resource": [state_key_arn],
        },
        {
            "Sid": "OwnSecretsKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
            "Resource": [secrets_key_arn],
        },
        {
            "Sid": "OwnDeployLease",
            "Effect": "Allow",
            "Action": [
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
            ],
            "Resource": [table_arn],
            "Condition": {
                "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [f"{project}/{stack}"]}
            },
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})
