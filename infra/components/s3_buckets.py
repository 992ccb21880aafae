"""What both our buckets (Pulumi state, raw archive) are: versioned, optionally object-locked in
governance mode, KMS-encrypted with a bucket key, closed to the public, TLS only."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws


def secured_bucket(
    stem: str,
    bucket_name: str,
    key: aws.kms.Key,
    *,
    lock_days: int | None,
    keep: pulumi.ResourceOptions,
    child: pulumi.ResourceOptions,
) -> tuple[aws.s3.Bucket, aws.s3.BucketPublicAccessBlock]:
    """The bucket (options `keep`) and its settings (options `child`), named `<stem>-…`;
    `lock_days`: default object-lock retention, None for no lock."""
    bucket = aws.s3.Bucket(
        f"{stem}-bucket", bucket=bucket_name, object_lock_enabled=lock_days is not None, opts=keep
    )
    aws.s3.BucketVersioning(
        f"{stem}-versioning",
        bucket=bucket.id,
        versioning_configuration={"status": "Enabled"},
        opts=child,
    )
    if lock_days is not None:
        aws.s3.BucketObjectLockConfiguration(
            f"{stem}-object-lock",
            bucket=bucket.id,
            object_lock_enabled="Enabled",
            rule={"default_retention": {"mode": "GOVERNANCE", "days": lock_days}},
            opts=child,
        )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{stem}-encryption",
        bucket=bucket.id,
        rules=[
            {
                "apply_server_side_encryption_by_default": {
                    "sse_algorithm": "aws:kms",
                    "kms_master_key_id": key.arn,
                },
                "bucket_key_enabled": True,
            }
        ],
        opts=child,
    )
    public_access = aws.s3.BucketPublicAccessBlock(
        f"{stem}-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child,
    )
    aws.s3.BucketPolicy(
        f"{stem}-tls-only",
        bucket=bucket.id,
        policy=bucket.arn.apply(tls_only_policy),
        opts=pulumi.ResourceOptions.merge(
            child, pulumi.ResourceOptions(depends_on=[public_access])
        ),
    )
    return bucket, public_access


def tls_only_policy(bucket_arn: str) -> str:
    """Refuse every request to the bucket that does not come over TLS."""
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
