"""The remote state backend: an S3 bucket for Pulumi state and a DynamoDB table for the lock.

Both are protected and retained on delete: losing either loses every stack's state (or lets two
deploys race). The bucket is versioned with object lock, KMS-encrypted with a rotating key,
closed to the public, TLS-only, and expires old versions after a retention period. The table has
deletion protection and point-in-time recovery. Pulumi's S3 backend does not lock through
DynamoDB itself; `infra.deploy` takes a lease in this table around every `pulumi up`/`preview`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass
class StateBackendArgs:
    bucket_name: str
    lock_table_name: str
    noncurrent_version_days: int = 365
    object_lock_days: int = 30


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
        self.bucket = aws.s3.Bucket(
            f"{name}-bucket", bucket=args.bucket_name, object_lock_enabled=True, opts=keep
        )
        bucket = self.bucket.id
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        aws.s3.BucketObjectLockConfiguration(
            f"{name}-object-lock",
            bucket=bucket,
            object_lock_enabled="Enabled",
            rule={"default_retention": {"mode": "GOVERNANCE", "days": args.object_lock_days}},
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": self.key.arn,
                    },
                    "bucket_key_enabled": True,
                }
            ],
            opts=child,
        )
        self.public_access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket,
            policy=self.bucket.arn.apply(_tls_only_policy),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.public_access_block]),
        )
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
        self.register_outputs(
            {
                "bucket": self.bucket.bucket,
                "lock_table": self.lock_table.name,
                "kms_key": self.key.arn,
            }
        )


def _tls_only_policy(bucket_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )
